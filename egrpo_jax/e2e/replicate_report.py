"""`egrpo replicate`'s report: from run records (e2e/replicate.py) to report.md, summary.json and plots.

Mean ± std over seeds per arm, paired 95% bootstrap intervals over questions (eval.stats) against
GRPO and against the SFT start, the training reward net of question difficulty, the training groups'
composition and reward-hacking watch (when the records hold them), tool calls per rollout over
training, the entity-match analysis, the alpha curve, and which of the paper's claims hold.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egrpo_jax.e2e.replicate import GRPO, SFT_LABEL, Arm
from egrpo_jax.eval.analysis import plot_errorbars, plot_grouped_curves
from egrpo_jax.eval.report import comparison_table
from egrpo_jax.eval.stats import paired_bootstrap, score_matrix, seed_interval
from egrpo_jax.eval.train_curve import third_means
from egrpo_jax.rl.watch import COMPOSITION, WATCH

COMPARE_KEYS = ("pass@1", "pass@3", "tool_calls/mean", "train/tool_calls", "train/accuracy",
                "entity_match/correct", "entity_match/wrong", "near_miss/wrong_rate", "tool_calls/std", "entity_corr")
FIRST_ALL_WRONG = "groups/all_wrong, step 1"
WATCH_KEYS = (*COMPOSITION, FIRST_ALL_WRONG, *WATCH)
CURVES = (("tool_calls/per_rollout", "tool calls per rollout"), ("accuracy", "training accuracy"),
          ("reward/mean", "reward"), ("entity_match/all", "entity match"))


def aggregate(records: Sequence[Mapping], out_dir: str | Path, *, title: str = "GRPO vs E-GRPO",
              notes: Sequence[str] = ()) -> Path:
    """report.md + summary.json + plots/*.png from run records (the SFT start has arm SFT_LABEL)."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[Mapping]] = {}
    for r in sorted(records, key=lambda r: (r["alpha"] >= 0, r.get("schedule") == "linear", r["alpha"])):
        groups.setdefault(r["arm"], []).append(r)
    table = comparison_table({k: [r["summary"] for r in v] for k, v in groups.items()}, COMPARE_KEYS)
    rl_groups = {k: [r["training"] for r in v] for k, v in groups.items() if k != SFT_LABEL}
    plots = {}
    for key, name in CURVES:
        fname = key.replace("/", "_") + ".png"
        plots[name] = plot_grouped_curves(rl_groups, key, out / "plots" / fname, ylabel=name).relative_to(out)
    paired = paired_table(groups)
    curve = _alpha_curve(groups, out / "plots" / "alpha_curve.png")
    if curve is not None:
        plots["Pass@1 vs alpha"] = curve.relative_to(out)
    entity = _entity_counts(groups)
    columns = ("Columns: Pass@1 / Pass@3 / tool calls per rollout / entity match of correct and wrong rollouts on "
               "the test split after training; `train/tool_calls` and `train/accuracy` are means over all training "
               "steps; `near_miss/wrong_rate` is the fraction of wrong rollouts that match at least half the gold entities "
               "(what E-GRPO's partial reward can rank); `tool_calls/std` the spread of tool calls per rollout; "
               "`entity_corr` is the Pearson correlation of a rollout's entity match rate with its "
               "correctness.")
    ci_note = ("Differences in percentage points, mean over seeds and questions, with a 95% bootstrap interval "
               "over questions (the same resample for every seed; runs paired by SFT start and seed: same start, "
               "questions and sampling seeds; each run against its own start). Over runs: the mean of each "
               "paired run's difference with a 95% Student-t interval over runs (2 or more), which holds "
               "run-to-run spread: another seed trains another policy. Tool calls: mean ± std over seeds of "
               "the per-seed difference of the training mean.")
    lines = [f"# {title}", "", *notes, "", "## Held-out test set (mean ± std over seeds)", "", table, columns, "",
             "## Paired differences", "", ci_note, "", *paired["lines"],
             "", "## Entity analysis (summed over seeds)", "",
             "| run | questions where correct rollouts match more entities | ... wrong rollouts match more |",
             "|---|---|---|"]
    lines += [f"| {k} | {a} | {b} |" for k, (a, b) in entity.items()]
    lines += _excess_lines(groups)
    watch = _watch_runs(groups)
    lines += _watch_lines(watch)
    lines += ["", "## The paper's claims here", "", *claims(groups, paired["diffs"], entity)]
    lines += ["", "## Training curves (mean ± std over seeds)", ""]
    lines += [f"![{name}]({p.as_posix()})" for name, p in plots.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(
        {"groups": {k: [r["summary"] for r in v] for k, v in groups.items()},
         "paired": {k: {m: dataclasses.asdict(d) if dataclasses.is_dataclass(d) else d for m, d in v.items()}
                    for k, v in paired["diffs"].items()},
         "entity_counts": entity, **({"training_watch": watch} if watch else {})},
        indent=2, default=float, sort_keys=True) + "\n")
    return out / "report.md"


def _excess_lines(groups: Mapping[str, Sequence[Mapping]]) -> list[str]:
    """Has the training reward risen? Per arm, training accuracy net of each step's question difficulty
    (the SFT start's Pass@1 on them), first vs last third of the steps."""
    starts = [r for r in groups.get(SFT_LABEL, []) if r.get("rl_per_question")]
    rows = []
    for name, runs in groups.items():
        xs = [(_run_label(r), third_means(r["train_excess"])) for r in runs if r.get("train_excess")]
        if name == SFT_LABEL or not xs:
            continue
        pts = {k: [100 * t[k][0] for _, t in xs] for k in ("first", "last", "last-first")}
        d = pts["last-first"]
        risen = ("n/a (1 seed)" if len(d) < 2 else
                 "yes" if np.mean(d) - 2 * np.std(d, ddof=1) / math.sqrt(len(d)) > 0 else "no")
        per_seed = "; ".join(f"{seed}: {100 * t['last-first'][0]:+.1f} [{100 * t['last-first'][1]:+.1f}, "
                             f"{100 * t['last-first'][2]:+.1f}]" for seed, t in xs)
        rows.append(f"| {name} | {len(xs)} | {_ms(pts['first'])} | {_ms(pts['last'])} | {_ms(d)} | "
                    f"{risen} | {per_seed} |")
    if not rows or not starts:
        return []
    start_p1 = ", ".join(f"{r.get('start', '')} {100 * np.mean([v[0] for v in r['rl_per_question'].values()]):.1f}%"
                         .strip() for r in starts)
    return ["", "## Training reward net of question difficulty", "",
            f"Training accuracy per step minus the SFT start's Pass@1 on that step's questions (from an evaluation "
            f"of the start on all {len(starts[0]['rl_per_question'])} rl-split questions, Pass@1 {start_p1}), "
            "in points: mean ± std over seeds of the first and last third of the steps. Risen: the mean "
            "last-minus-first exceeds 2 standard errors over seeds (needs 2 or more seeds). Per seed: last minus "
            "first with a 95% bootstrap interval over steps.", "",
            "| run | seeds | first third | last third | last - first | risen | per seed |", "|---|---|---|---|---|---|---|",
            *rows]


def _watch_runs(groups: Mapping[str, Sequence[Mapping]]) -> dict[str, list[dict[str, float]]]:
    """Per RL arm, each run's WATCH_KEYS over training (means over steps, and step 1's all-wrong share),
    for the runs whose records hold them (records from before they were logged hold none)."""
    out = {}
    for name, runs in groups.items():
        means = [m for m in (_watch_means(r.get("training") or []) for r in runs) if m]
        if name != SFT_LABEL and means:
            out[name] = means
    return out


def _watch_means(rows: Sequence[Mapping]) -> dict[str, float]:
    out = {}
    for key in (*COMPOSITION, *WATCH):
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if vals:
            out[key] = float(np.mean(vals))
    first = min(rows, key=lambda r: r["step"], default={})
    if isinstance(first.get("groups/all_wrong"), (int, float)):
        out[FIRST_ALL_WRONG] = float(first["groups/all_wrong"])
    return out


def _watch_lines(watch: Mapping[str, Sequence[Mapping]]) -> list[str]:
    if not watch:
        return []
    return ["", "## Group composition and reward watch (training; mean ± std over seeds)", "",
            "Per step (rl/watch.py, docs/rewards.md), averaged over the steps: the share of groups whose rollouts "
            "are all correct, mixed, all wrong, and all wrong yet split by the reward (partial credit: E-GRPO "
            "updates on them, GRPO cannot); the all-wrong share at step 1; thought tokens per rollout, gold-entity "
            "mentions per thought, and the share of entities named in thoughts that the rollout had not read "
            "before (question or an earlier tool response).", "",
            comparison_table(watch, WATCH_KEYS).rstrip("\n")]


def _matrix(runs: Sequence[Mapping], questions: Sequence[str], which: int) -> np.ndarray:
    return score_matrix([r["per_question"] for r in runs], questions, which)


def _run_label(r: Mapping) -> str:
    return f"{r['start']} {r['seed']}" if r.get("start") else str(r["seed"])


def _key(r: Mapping) -> tuple[str, int]:
    """What pairs two runs: the same SFT start (a pooled report's grid, grid_store.pooled_runs) and seed."""
    return r.get("start", ""), r["seed"]


def paired_table(groups: Mapping[str, Sequence[Mapping]]) -> dict[str, Any]:
    """Each RL arm vs GRPO (same start and seed) and vs its SFT start: Pass@1 / Pass@3 differences with CIs."""
    sft = {r.get("start", ""): r for r in groups.get(SFT_LABEL, [])}
    grpo = {_key(r): r for r in groups.get(GRPO.label, [])}
    first = next(iter(sft.values()), None) or next(iter(grpo.values()), None)
    questions = sorted(first["per_question"]) if first else []
    diffs: dict[str, dict[str, Any]] = {}
    rows = ["| run | seeds | Δ Pass@1 vs GRPO | over runs | Δ Pass@3 vs GRPO | Δ Pass@1 vs SFT | over runs | "
            "Δ Pass@3 vs SFT | Δ train tool calls vs GRPO |", "|---|---|---|---|---|---|---|---|---|"]
    for name, runs in groups.items():
        if name == SFT_LABEL or not questions:
            continue
        d: dict[str, Any] = {}
        paired = [r for r in runs if _key(r) in grpo]
        if name != GRPO.label:
            d.update(_compare(paired, [grpo[_key(r)] for r in paired], questions, "GRPO"))
        with_start = [r for r in runs if r.get("start", "") in sft]
        d.update(_compare(with_start, [sft[r.get("start", "")] for r in with_start], questions, "SFT"))
        tc = [r["summary"].get("train/tool_calls") - grpo[_key(r)]["summary"].get("train/tool_calls")
              for r in paired if r["summary"].get("train/tool_calls") is not None
              and grpo[_key(r)]["summary"].get("train/tool_calls") is not None]
        diffs[name] = d
        cell = lambda k: d[k].points() if k in d else "—"  # noqa: E731
        tool = _ms(tc, 3) if tc and name != GRPO.label else "—"
        rows.append(f"| {name} | {len(runs)} | {cell('pass@1 vs GRPO')} | {cell('pass@1 vs GRPO, over runs')} | "
                    f"{cell('pass@3 vs GRPO')} | {cell('pass@1 vs SFT')} | {cell('pass@1 vs SFT, over runs')} | "
                    f"{cell('pass@3 vs SFT')} | {tool} |")
        d["train_tool_calls_vs_grpo"] = tc
    return {"lines": rows if len(rows) > 2 else ["(no RL runs)"], "diffs": diffs}


def _compare(runs: Sequence[Mapping], partners: Sequence[Mapping], questions: Sequence[str],
             against: str) -> dict[str, Any]:
    """Pass@1 / Pass@3 of runs minus their partners (row i pairs with row i): the bootstrap over
    questions and, with 2 or more pairs, the t interval over the pairs' own differences."""
    out: dict[str, Any] = {}
    if not runs:
        return out
    for which, key in ((0, "pass@1"), (1, "pass@3")):
        a, b = _matrix(runs, questions, which), _matrix(partners, questions, which)
        out[f"{key} vs {against}"] = paired_bootstrap(a, b)
        if len(runs) > 1:
            out[f"{key} vs {against}, over runs"] = seed_interval((a - b).mean(axis=1))
    return out


def claims(groups: Mapping[str, Sequence[Mapping]], diffs: Mapping[str, Mapping[str, Any]],
           entity: Mapping[str, tuple[int, int]]) -> list[str]:
    """One line per claim of PAPER.md, decided from the intervals (a claim holds only if its interval
    excludes zero in the claimed direction)."""
    out = []
    ch = sum(a for a, _ in entity.values())
    wh = sum(b for _, b in entity.values())
    out.append(f"1. Correct rollouts mention more ground-truth entities than wrong ones: "
               f"{'holds' if ch > 2 * wh else 'not shown'} ({ch} questions vs {wh}, all runs).")
    e03 = diffs.get(Arm(0.3).label, {})
    p1, p3 = e03.get("pass@1 vs GRPO"), e03.get("pass@3 vs GRPO")
    if p1 is not None:
        # an interval over runs, when there is one, must agree: the question bootstrap omits run-to-run spread
        r1, r3 = e03.get("pass@1 vs GRPO, over runs"), e03.get("pass@3 vs GRPO, over runs")
        above = [p.lo > 0 and (r is None or r.lo > 0) for p, r in ((p1, r1), (p3, r3))]
        verdict = "holds" if all(above) else ("partly" if any(above) else "not shown")
        line = (f"2. E-GRPO (alpha=0.3) beats GRPO on Pass@1 and Pass@3: {verdict} "
                f"(Pass@1 {p1.points()}, Pass@3 {p3.points()} points")
        if r1 is not None:
            need = r1.seeds_to_detect(0.01)
            line += (f"; Pass@1 over {r1.seeds} runs {r1.points()}, sd {100 * r1.sd:.1f}: these runs find a true "
                     f"difference of {100 * r1.detectable():.1f} points 80% of the time, a 1-point one needs "
                     f"{need if need is not None else 'over 1000'} runs")
        out.append(line + ").")
        tc = e03.get("train_tool_calls_vs_grpo") or []
        if tc:
            m, sd = float(np.mean(tc)), float(np.std(tc, ddof=1)) if len(tc) > 1 else 0.0
            fewer = m < 0 and (len(tc) > 1 and m + 2 * sd / math.sqrt(len(tc)) < 0)
            out.append(f"3. E-GRPO uses fewer tool calls per rollout in training: {'holds' if fewer else 'not shown'} "
                       f"({m:+.3f} ± {sd:.3f} calls over {len(tc)} seeds).")
    e05 = groups.get(Arm(0.5).label)
    if e05 and Arm(0.3).label in groups:
        by_key = {_key(r): r for r in groups[Arm(0.3).label]}
        pairs = [r for r in e05 if _key(r) in by_key]
        qs = sorted(pairs[0]["per_question"]) if pairs else []
        if pairs:
            d = paired_bootstrap(_matrix([by_key[_key(r)] for r in pairs], qs, 0), _matrix(pairs, qs, 0))
            means = {k: float(np.mean([r["summary"]["pass@1"] for r in v])) for k, v in groups.items()
                     if k != SFT_LABEL}
            best = max(means, key=means.get)
            out.append(f"4. alpha = 0.3 is best and 0.5 worse than 0.3: "
                       f"{'holds' if d.lo > 0 and best == Arm(0.3).label else 'not shown'} "
                       f"(Pass@1 0.3 minus 0.5: {d.points()} points; best mean Pass@1: {best}).")
    return out


def _alpha_curve(groups: Mapping[str, Sequence[Mapping]], path: Path) -> Path | None:
    pts = sorted((runs[0]["alpha"], [r["summary"]["pass@1"] for r in runs]) for runs in groups.values()
                 if runs and runs[0]["alpha"] >= 0 and runs[0].get("schedule", "constant") == "constant")
    if len(pts) < 2:
        return None

    sft = groups.get(SFT_LABEL)
    return plot_errorbars([a for a, _ in pts], [100 * np.mean(v) for _, v in pts], [100 * np.std(v) for _, v in pts],
                          path, xlabel="alpha (0 = GRPO)", ylabel="held-out Pass@1 (%), mean ± std over seeds",
                          title="Pass@1 vs alpha", baseline=100 * sft[0]["summary"]["pass@1"] if sft else None,
                          baseline_label="SFT start")


def _ms(xs: Sequence[float], digits: int = 1) -> str:
    if not xs:
        return "n/a"
    sd = float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0
    return f"{np.mean(xs):+.{digits}f} ± {sd:.{digits}f}"


def _entity_counts(groups: Mapping[str, Sequence[Mapping]]) -> dict[str, tuple[int, int]]:
    out = {}
    for k, runs in groups.items():
        comps = [r["summary"].get("entity_comparison") or {} for r in runs]
        out[k] = (sum(c.get("correct_higher", 0) for c in comps), sum(c.get("wrong_higher", 0) for c in comps))
    return out
