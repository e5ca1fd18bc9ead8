"""Diagnostic: an RL run's training accuracy per step, net of the difficulty of that step's questions.

    PYTHONPATH=. .venv/bin/python -m bench.train_curve SFT_EVAL RL_QUESTIONS METRICS.jsonl [...]
        [--batch-size 8] [--data-seed 0]

With 8 questions a step, raw training accuracy mostly tracks which questions were drawn (the SFT
policy is right on some questions nearly always and on others nearly never). This re-draws each
step's questions (the RL loop's QuestionStream with the same records, batch size and seed) and
subtracts the SFT start's Pass@1 on them, taken from an `rl` evaluation of the start
(SFT_EVAL: a bench.rl_from_sft result.json with a `before:rl:...` entry over the whole rl split).
What is left rises if the policy improves on the questions it trains on. Prints, per run, the
excess per step and its mean over the first and last third of the steps with a 95% bootstrap
interval over steps. Runs with rl.dynamic_sampling are refused (refill rounds draw extra batches
from the stream); resumed runs are not detected and not valid.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def excess_per_step(steps: list[dict], records, batch_size: int, seed: int, sft_pass1: dict[str, float]) -> list[float]:
    """accuracy of step n minus the mean SFT Pass@1 of the questions step n drew."""
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


def third_means(x: list[float], *, n_boot: int = 2000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
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


def sft_pass1_from(result: dict) -> dict[str, float]:
    keys = [k for k in result if k.startswith("before:rl:")]
    if len(keys) != 1:
        raise ValueError(f"want one before:rl:... evaluation, it has {keys or 'none'} "
                         "(run bench.rl_from_sft with one --eval rl:T:TOP_P:K:0)")
    return {q: float(v[0]) for q, v in result[keys[0]]["per_question"].items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sft_eval")
    ap.add_argument("rl_questions")
    ap.add_argument("metrics", nargs="+")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--data-seed", type=int, default=0)
    args = ap.parse_args(argv)
    from egrpo_jax.data.io import load_questions

    with open(args.sft_eval) as f:
        try:
            sft = sft_pass1_from(json.load(f))
        except ValueError as e:
            raise SystemExit(f"{args.sft_eval}: {e}") from None
    records = load_questions(args.rl_questions)
    for path in args.metrics:
        with open(path) as f:
            steps = [json.loads(line) for line in f]
        try:
            x = excess_per_step(steps, records, args.batch_size, args.data_seed, sft)
        except ValueError as e:
            raise SystemExit(f"{path}: {e}") from None
        print(path)
        print("  excess per step:", " ".join(f"{v:+.2f}" for v in x))
        for name, (m, lo, hi) in third_means(x).items():
            print(f"  {name:>10}: {m:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
