"""Evaluate a policy: k rollouts per question through the agent loop, then score and summarise.

Questions are processed in batches of `batch_size` questions (batch_size * k engine rows). One
engine is built for the whole evaluation and restarted per batch, so its compiled executables
are reused. Each batch gets its own sampling seed (seed + batch index), so batches draw
different random streams while the whole evaluation stays reproducible from `seed`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.agent.loop import run_rollouts
from egrpo_jax.agent.template import stop_table
from egrpo_jax.agent.trajectory import Trajectory
from egrpo_jax.data.schema import QARecord
from egrpo_jax.eval.metrics import RolloutScore, score_rollouts, summarize
from egrpo_jax.rewards.answer import Judge
from egrpo_jax.sampling.api import RolloutEngine, SamplingParams

# The paper's inference sampling.
PAPER_SAMPLING = SamplingParams(temperature=0.6, top_p=0.95)

EngineFactory = Callable[[int], RolloutEngine]  # num_rows -> engine
BatchHook = Callable[[int, list[Trajectory], list[RolloutScore]], None]  # (batch index, trajs, scores)


def default_engine_factory(
    model: Any, tokenizer: Any, sampling: SamplingParams, max_len: int
) -> EngineFactory:
    """Rows of the project's jitted Engine, stopping on </tool_call>, </answer> and the tokenizer's EOS."""
    stops = []  # the stop table, built on first use and shared by every batch's engine

    def make(num_rows: int) -> RolloutEngine:
        from egrpo_jax.sampling.engine import Engine  # imported late: keeps jax off the import path

        if not stops:
            stops.append(stop_table(tokenizer, model.cfg.vocab_size))
        eos = getattr(tokenizer, "eos_ids", None)
        if eos is None:
            one = getattr(tokenizer, "eos_token_id", None)
            eos = [] if one is None else [one]
        return Engine(
            model,
            num_rows=num_rows,
            max_len=max_len,
            sampling=sampling,
            stops=stops[0],
            eos_ids=list(eos),
            pad_id=int(getattr(tokenizer, "pad_id", 0) or 0),
        )

    return make


def evaluate(
    model: Any,
    tokenizer: Any,
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
) -> tuple[list[RolloutScore], dict]:
    """Roll out each record k times and score it; returns (per-rollout scores, summary).

    `agent_cfg` supplies the limits and prompt style; its group_size and seed are replaced by k and
    seed. `engine_factory(num_rows)` overrides the engine (tests pass a scripted one; `model` is
    then unused). `on_batch` sees each batch's trajectories and scores as they finish (progress
    bars, rollout dumps). The summary adds the agent loop's timing to `summarize`'s metrics.
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
        trajs, loop_metrics = run_rollouts(engine, tokenizer, batch, tools, cfg)
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
