"""Diagnostic: paired differences between bench.rl_from_sft runs over seeds, with 95% intervals.

    PYTHONPATH=. .venv/bin/python -m bench.pair_runs --a A_SEED0/result.json,A_SEED1/result.json \
        --b B_SEED0/result.json,B_SEED1/result.json [--b-tag before]

For each evaluation the runs share (e.g. `rl:0.6:0.95:3:288`), prints mean Pass@1 / Pass@k of the
`after` evaluations of A and of B (`--b-tag before`: B's start, the SFT policy) and A minus B, per
question averaged over the paired seeds (the i-th A file pairs with the i-th B file), with a
percentile bootstrap over questions (eval.stats.paired_bootstrap, as `egrpo replicate` reports).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def load(paths: str) -> list[dict]:
    out = []
    for p in paths.split(","):
        with open(p) as f:
            out.append(json.load(f))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="comma-separated result.json files, one per seed")
    ap.add_argument("--b", required=True, help="comma-separated result.json files, paired with --a in order")
    ap.add_argument("--b-tag", default="after", choices=("after", "before"))
    args = ap.parse_args(argv)
    from egrpo_jax.eval.stats import paired_bootstrap, score_matrix

    a_runs, b_runs = load(args.a), load(args.b)
    if len(a_runs) != len(b_runs):
        raise SystemExit(f"--a has {len(a_runs)} files and --b {len(b_runs)}: they pair one to one")
    specs = sorted({k.split(":", 1)[1] for r in a_runs for k in r if k.startswith("after:")})
    for spec in specs:
        a_key, b_key = f"after:{spec}", f"{args.b_tag}:{spec}"
        missing = [i for i, (x, y) in enumerate(zip(a_runs, b_runs)) if a_key not in x or b_key not in y]
        if missing:
            raise SystemExit(f"{spec}: pair {missing[0]} lacks {a_key} in --a or {b_key} in --b")
        qs = sorted(a_runs[0][a_key]["per_question"])
        k = spec.split(":")[3]
        for which, name in ((0, "pass@1"), (1, f"pass@{k}")):
            a = score_matrix([r[a_key]["per_question"] for r in a_runs], qs, which)
            b = score_matrix([r[b_key]["per_question"] for r in b_runs], qs, which)
            d = paired_bootstrap(a, b)
            print(f"{spec} {name}: A {100 * a.mean():.1f}% (seeds {' '.join(f'{100 * x:.1f}' for x in a.mean(1))}) "
                  f"B {100 * b.mean():.1f}%  A-B {100 * d.mean:+.1f} [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] points "
                  f"({d.seeds} seeds x {d.questions} questions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
