"""Evaluate a policy: k rollouts per question through the agent loop, then score and summarise.

Questions are processed in batches of `batch_size` questions (batch_size * k engine rows). One
engine is built for the whole evaluation and restarted per batch, so its compiled executables
and its KV cache (rows x agent.max_total_tokens: the memory an evaluation needs) are reused. Each
batch gets its own sampling seed (seed + batch index), so batches draw different random streams
while the whole evaluation stays reproducible from `seed`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

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
BatchHook = Callable[[int, list[Trajectory], list[RolloutScore]], None]  # (batch index, trajs, scores)
ProgressHook = Callable[[int], None]  # rollouts finished since the last call (called after every turn)


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
    on_batch: BatchHook | None = None,
    on_progress: ProgressHook | None = None,
) -> tuple[list[RolloutScore], dict]:
    """Roll out each record k times and score it; returns (per-rollout scores, summary).

    `agent_cfg` supplies the limits and prompt style; its group_size and seed are replaced by k and
    seed. `engine_factory(num_rows)` overrides the engine (tests pass a scripted one; `model` is
    then unused). `on_batch` sees each batch's trajectories and scores as they finish (rollout
    dumps); `on_progress(n)` hears of every n rollouts finished, turn by turn (progress bars). The
    summary adds the agent loop's timing to `summarize`'s metrics.
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
    rows = min(batch_size, len(records)) * k
    make = engine_factory or default_engine_factory(model, tokenizer, sampling, base.max_total_tokens)
    engine = make(rows)

    t0 = time.perf_counter()
    scores: list[RolloutScore] = []
    loop_time: dict[str, float] = {}
    for b, start in enumerate(range(0, len(records), batch_size)):
        batch = list(records[start : start + batch_size])
        cfg = dataclasses.replace(base, group_size=k, seed=seed + b)
        seen = [0]

        def on_turn(_turn: int, finished: int, seen=seen) -> None:
            if on_progress is not None and finished > seen[0]:
                on_progress(finished - seen[0])
                seen[0] = finished

        trajs, loop_metrics = run_rollouts(engine, tokenizer, batch, tools, cfg, on_turn=on_turn)
        batch_scores = score_rollouts(trajs, batch, strict=strict, judge=judge)
        scores.extend(batch_scores)
        for key, v in loop_metrics.items():
            if key.startswith("time/"):
                loop_time[key] = loop_time.get(key, 0.0) + v
        if on_batch is not None:
            on_batch(b, trajs, batch_scores)
    summary = summarize(scores, ks if ks is not None else sorted({1, k}))
    summary.update({key: round(v, 4) for key, v in sorted(loop_time.items())})
    summary["time/eval_s"] = round(time.perf_counter() - t0, 4)
    summary["sampling"] = dataclasses.asdict(sampling)
    return scores, summary


def evaluate_to_report(cfg, model: Any, tokenizer: TokenizerLike, records: Sequence[QARecord], tools: Any,
                       out_dir: str, *, title: str, meta: dict | None = None, training_rows=None,
                       on_batch: BatchHook | None = None, on_progress: ProgressHook | None = None) -> dict:
    """`evaluate` with a run config's eval.* and agent.* keys (the first eval.limit questions), then the
    report folder (eval.report); returns the report's summary. `egrpo eval` and the demo pipelines."""
    e = cfg.eval
    records = list(records)[: e.limit or None]
    ks = sorted({1, e.k})
    scores, summary = evaluate(model, tokenizer, records, tools, k=e.k, sampling=eval_sampling(cfg),
                               agent_cfg=agent_config(cfg), batch_size=e.batch_size, seed=e.seed, ks=ks,
                               strict=e.strict_match, on_batch=on_batch, on_progress=on_progress)
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
