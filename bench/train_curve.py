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
from the stream); resumed runs are not detected and not valid. The computation is
egrpo_jax.eval.train_curve, which `egrpo replicate` also reports for every run of its grid.
"""

from __future__ import annotations

import argparse
import json

from egrpo_jax.eval.train_curve import excess_per_step, third_means


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
