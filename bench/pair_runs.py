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


def load(paths: str) -> list[dict]:
    out = []
    for p in paths.split(","):
        with open(p) as f:
            out.append(json.load(f))
    return out


def differences(a_runs: list[dict], b_runs: list[dict], b_tag: str = "after") -> dict[str, dict[str, tuple]]:
    """spec -> {pass@1, pass@k: (A scores [seeds, Q], B scores, PairedDiff)} for each `after:` evaluation of A."""
    from egrpo_jax.eval.stats import paired_bootstrap, score_matrix

    if len(a_runs) != len(b_runs):
        raise ValueError(f"{len(a_runs)} A runs and {len(b_runs)} B runs: they pair one to one")
    out: dict[str, dict[str, tuple]] = {}
    for spec in sorted({k.split(":", 1)[1] for r in a_runs for k in r if k.startswith("after:")}):
        a_key, b_key = f"after:{spec}", f"{b_tag}:{spec}"
        missing = [i for i, (x, y) in enumerate(zip(a_runs, b_runs)) if a_key not in x or b_key not in y]
        if missing:
            raise ValueError(f"{spec}: pair {missing[0]} lacks {a_key} in A or {b_key} in B")
        qs = sorted(a_runs[0][a_key]["per_question"])
        out[spec] = {}
        for which, name in ((0, "pass@1"), (1, f"pass@{spec.split(':')[3]}")):
            a = score_matrix([r[a_key]["per_question"] for r in a_runs], qs, which)
            b = score_matrix([r[b_key]["per_question"] for r in b_runs], qs, which)
            out[spec][name] = (a, b, paired_bootstrap(a, b))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="comma-separated result.json files, one per seed")
    ap.add_argument("--b", required=True, help="comma-separated result.json files, paired with --a in order")
    ap.add_argument("--b-tag", default="after", choices=("after", "before"))
    args = ap.parse_args(argv)
    try:
        diffs = differences(load(args.a), load(args.b), args.b_tag)
    except ValueError as e:
        raise SystemExit(f"bench.pair_runs: {e}") from None
    for spec, by_metric in diffs.items():
        for name, (a, b, d) in by_metric.items():
            print(f"{spec} {name}: A {100 * a.mean():.1f}% (seeds {' '.join(f'{100 * x:.1f}' for x in a.mean(1))}) "
                  f"B {100 * b.mean():.1f}%  A-B {100 * d.mean:+.1f} [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] points "
                  f"({d.seeds} seeds x {d.questions} questions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
