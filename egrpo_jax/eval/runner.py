"""Evaluate a policy: k rollouts per question through the agent loop, then score and summarise.

All questions x k rollouts stream through one engine of `batch_size * k` rows (agent/loop.py): a
row that finishes takes the next rollout at once, so no row waits for the slowest rollout of a
batch, and memory is that engine's KV cache (rows x agent.max_total_tokens) whatever the number
of questions. Rollout j (question j // k, sample j % k) samples from (seed, j, position), so the
result does not depend on batch_size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from egrpo_jax import compile_cache
from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.agent.loop import run_rollouts
from egrpo_jax.agent.trajectory import Trajectory
from egrpo_jax.assembly import agent_config, build_engine, eval_sampling
from egrpo_jax.data.schema import QARecord
from egrpo_jax.eval.metrics import RolloutScore, score_rollouts, summarize
from egrpo_jax.eval.report import load_summary, write_run_report
from egrpo_jax.rewards.answer import Judge
from egrpo_jax.sampling.api import RolloutEngine, SamplingParams
from egrpo_jax.tokenizer_api import TokenizerLike

TIMING_FILE = "timing.json"  # next to the report: the agent loop's host / device / tool seconds
# The paper's inference sampling.
PAPER_SAMPLING = SamplingParams(temperature=0.6, top_p=0.95)

EngineFactory = Callable[[int], RolloutEngine]  # num_rows -> engine
QuestionHook = Callable[[int, list[Trajectory], list[RolloutScore]], None]  # (question index, trajs, scores)
ProgressHook = Callable[[int], None]  # rollouts finished since the last call


def default_engine_factory(model: Any, tokenizer: TokenizerLike, sampling: SamplingParams,
                           max_len: int) -> EngineFactory:
    """The stack's rollout engine (assembly.build_engine) with `num_rows` rows."""
    return lambda num_rows: build_engine(model, tokenizer, num_rows=num_rows, max_len=max_len, sampling=sampling)


def evaluate(
    model: Any,
    tokenizer: TokenizerLike,
    records: Sequence[QARecord],
    tools: Any,
    *,
    k: int = 1,
    sampling: SamplingParams = PAPER_SAMPLING,
    agent_cfg: AgentConfig | None = None,
    batch_size: int = 8,
    seed: int = 0,
    ks: Sequence[int] | None = None,
    strict: bool = False,
    judge: Judge | None = None,
    engine_factory: EngineFactory | None = None,
    on_question: QuestionHook | None = None,
    on_progress: ProgressHook | None = None,
) -> tuple[list[RolloutScore], dict]:
    """Roll out each record k times and score it; returns (per-rollout scores, summary).

    `agent_cfg` supplies the limits and prompt style; its group_size and seed are replaced by k and
    seed. `batch_size` questions are in flight at once (batch_size * k engine rows).
    `engine_factory(num_rows)` overrides the engine (tests pass a scripted one; `model` is then
    unused). `on_question(i, trajs, scores)` sees each question's k trajectories and scores as soon
    as its last rollout ends (rollout dumps; in the order questions finish); `on_progress(1)` hears
    of every finished rollout (progress bars). The summary adds the agent loop's timing to
    `summarize`'s metrics.
    """
    if k < 1:
        raise ValueError(f"eval.k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"eval.batch_size must be >= 1, got {batch_size}")
    if not records:
        raise ValueError("eval: no questions to evaluate")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"eval: question id {dup!r} appears more than once")
    base = agent_cfg or AgentConfig()
    records = list(records)
    make = engine_factory or default_engine_factory(model, tokenizer, sampling, base.max_total_tokens)
    engine = make(min(batch_size, len(records)) * k)

    t0, c0 = time.perf_counter(), compile_cache.compile_seconds()
    groups: list[list[Trajectory | None]] = [[None] * k for _ in records]
    per_question: list[list[RolloutScore] | None] = [None] * len(records)

    def on_rollout(j: int, traj: Trajectory) -> None:
        qi, g = divmod(j, k)
        groups[qi][g] = traj
        if on_progress is not None:
            on_progress(1)
        if all(t is not None for t in groups[qi]):
            per_question[qi] = score_rollouts(groups[qi], [records[qi]], strict=strict, judge=judge)
            if on_question is not None:
                on_question(qi, list(groups[qi]), per_question[qi])

    cfg = dataclasses.replace(base, group_size=k, seed=seed)
    _, loop_metrics = run_rollouts(engine, tokenizer, records, tools, cfg, on_rollout=on_rollout)
    scores = [s for q in per_question for s in q]
    summary = summarize(scores, ks if ks is not None else sorted({1, k}))
    summary.update({key: round(v, 4) for key, v in sorted(loop_metrics.items()) if key.startswith("time/")})
    summary["time/eval_s"] = round(time.perf_counter() - t0, 4)
    summary["time/compile_s"] = round(compile_cache.compile_seconds() - c0, 4)
    summary["sampling"] = dataclasses.asdict(sampling)
    return scores, summary


def evaluate_to_report(cfg, model: Any, tokenizer: TokenizerLike, records: Sequence[QARecord], tools: Any,
                       out_dir: str, *, title: str, meta: dict | None = None, training_rows=None,
                       on_question: QuestionHook | None = None, on_progress: ProgressHook | None = None) -> dict:
    """`evaluate` with a run config's eval.* and agent.* keys (the first eval.limit questions), then the
    report folder (eval.report); returns the report's summary. `egrpo eval` and the demo pipelines."""
    e = cfg.eval
    records = list(records)[: e.limit or None]
    ks = sorted({1, e.k})
    scores, summary = evaluate(model, tokenizer, records, tools, k=e.k, sampling=eval_sampling(cfg),
                               agent_cfg=agent_config(cfg), batch_size=e.batch_size, seed=e.seed, ks=ks,
                               strict=e.strict_match, on_question=on_question, on_progress=on_progress)
    m = {"questions": len(records), "k": e.k, "temperature": e.temperature, "top_p": e.top_p, "top_k": e.top_k,
         "seed": e.seed, "max_tool_calls": cfg.agent.max_tool_calls, "max_total_tokens": cfg.agent.max_total_tokens,
         "max_turn_tokens": cfg.agent.max_turn_tokens, "prompt_style": cfg.agent.prompt_style,
         "strict_entities": e.strict_match, **(meta or {})}
    write_run_report(out_dir, scores, title=title, ks=ks, meta=m, training_rows=training_rows)
    # timings apart from summary.json, so that two identical evaluations write identical summaries
    timing = {k: v for k, v in summary.items() if k.startswith("time/")}
    with open(os.path.join(out_dir, TIMING_FILE), "w", encoding="utf-8") as f:
        json.dump(timing, f, indent=2, sort_keys=True)
    full = load_summary(out_dir)
    full["time/eval_s"] = summary.get("time/eval_s")
    return full
