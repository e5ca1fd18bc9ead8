"""An RL run's training accuracy per step, net of the difficulty of that step's questions.

With a few questions a step, raw training accuracy mostly tracks which questions were drawn (an
SFT policy is right on some questions nearly always and on others nearly never). `excess_per_step`
re-draws each step's questions (the RL loop's QuestionStream with the same records, batch size and
seed) and subtracts the SFT start's Pass@1 on them; what is left rises if the policy improves on
the questions it trains on. `third_means` compares the first and last third of the steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def excess_per_step(steps: Sequence[Mapping], records, batch_size: int, seed: int,
                    sft_pass1: Mapping[str, float]) -> list[float]:
    """accuracy of step n minus the mean SFT Pass@1 of the questions step n drew. A step that drew
    extra batches (rl.dynamic_sampling) cannot be re-drawn: error."""
    from egrpo_jax.data.pipeline import QuestionStream

    stream = QuestionStream(records, batch_size, seed=seed)
    out = []
    for m in steps:
        if m.get("dynamic/rounds", 1.0) != 1.0:
            raise ValueError(f"step {m['step']}: {m['dynamic/rounds']:g} rollout rounds (rl.dynamic_sampling drew "
                             "extra batches): the step's questions cannot be re-drawn")
        qs = next(stream)
        missing = [q.id for q in qs if q.id not in sft_pass1]
        if missing:
            raise ValueError(f"step {m['step']}: question {missing[0]} has no SFT score (evaluate the whole rl split)")
        out.append(float(m["accuracy"]) - float(np.mean([sft_pass1[q.id] for q in qs])))
    return out


def third_means(x: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Mean (and 95% bootstrap interval over steps) of the first and last third, and their difference."""
    x = np.asarray(x, np.float64)
    k = max(1, len(x) // 3)
    first, last = x[:k], x[-k:]
    rng = np.random.default_rng(seed)
    b_first = first[rng.integers(0, k, (n_boot, k))].mean(1)
    b_last = last[rng.integers(0, k, (n_boot, k))].mean(1)

    def ci(b):
        lo, hi = np.quantile(b, [0.025, 0.975])
        return float(lo), float(hi)

    return {"first": (float(first.mean()), *ci(b_first)), "last": (float(last.mean()), *ci(b_last)),
            "last-first": (float(last.mean() - first.mean()), *ci(b_last - b_first))}
