"""Per-run evaluation reports (markdown + JSON + PNG plots) and multi-run comparison tables.

A run folder written by `write_run_report`:
  report.md          headline metrics, entity analysis, plots (relative links)
  summary.json       everything in report.md as numbers (what `comparison_table` reads back)
  rollouts.jsonl     one RolloutScore per line
  plots/*.png        match-rate distribution, accuracy by entities matched, training curves
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from egrpo_jax.eval import analysis
from egrpo_jax.eval.metrics import RolloutScore, summarize

SUMMARY_FILE = "summary.json"
ROLLOUTS_FILE = "rollouts.jsonl"
REPORT_FILE = "report.md"

# Keys shown in comparison tables by default (dotted paths into summary.json).
DEFAULT_COMPARE_KEYS = (
    "pass@1",
    "pass@3",
    "f1",
    "tool_calls/mean",
    "tokens/mean",
    "format_error_rate",
    "entity_match/correct",
    "entity_match/wrong",
)
# Shown as percentages (like the paper's tables); everything else as plain numbers.
_PERCENT_PREFIXES = (
    "pass@",
    "any@",
    "accuracy",
    "f1",
    "entity_match/",
    "near_miss/",
    "answered_rate",
    "format_error_rate",
    "overlength_rate",
    "groups/",  # training group composition (rl/watch.py)
    "hacking/unearned",
)


def build_summary(
    scores: Sequence[RolloutScore],
    *,
    ks: Sequence[int] | None = None,
    bins: int = 10,
    meta: Mapping | None = None,
) -> dict:
    """Headline metrics + the entity analysis of one evaluation, JSON-able."""
    out = summarize(scores, ks)
    out["entity_comparison"] = analysis.entity_comparison(scores).to_json()
    out["match_rate_histogram"] = analysis.match_rate_histogram(scores, bins)
    out["accuracy_by_entities_matched"] = analysis.accuracy_by_entities_matched(scores)
    out["accuracy_by_match_rate"] = analysis.accuracy_by_match_rate(scores)
    if meta:
        out["meta"] = dict(meta)
    return out


def write_run_report(
    out_dir: str | Path,
    scores: Sequence[RolloutScore],
    *,
    title: str = "Evaluation",
    ks: Sequence[int] | None = None,
    bins: int = 10,
    meta: Mapping | None = None,
    training_rows: Sequence[Mapping] | None = None,
    training_panels: Mapping[str, Sequence[str]] = analysis.DEFAULT_PANELS,
) -> dict[str, Path]:
    """Write report.md, summary.json, rollouts.jsonl and plots/*.png; returns their paths by name."""
    out = Path(out_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    summary = build_summary(scores, ks=ks, bins=bins, meta=meta)
    paths: dict[str, Path] = {}
    paths["summary"] = out / SUMMARY_FILE
    paths["summary"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    paths["rollouts"] = out / ROLLOUTS_FILE
    with paths["rollouts"].open("w") as f:
        for s in scores:
            f.write(json.dumps(s.to_json()) + "\n")
    paths["match_rate_plot"] = analysis.plot_match_rate_distribution(
        summary["match_rate_histogram"], plots / "match_rate.png"
    )
    paths["accuracy_plot"] = analysis.plot_accuracy_by_matched(
        summary["accuracy_by_entities_matched"], plots / "accuracy_by_matched.png"
    )
    if training_rows:
        paths["training_plot"] = analysis.plot_training_curves(
            training_rows, plots / "training_curves.png", panels=training_panels, title=title
        )
    paths["report"] = out / REPORT_FILE
    rel = {k: v.relative_to(out) for k, v in paths.items() if k.endswith("_plot")}
    paths["report"].write_text(render_markdown(summary, title=title, plots=rel))
    return paths


def render_markdown(summary: Mapping, *, title: str, plots: Mapping[str, Path] | None = None) -> str:
    lines = [f"# {title}", ""]
    meta = summary.get("meta") or {}
    if meta:
        lines += ["| setting | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in meta.items()]
        lines.append("")
    lines += [
        (
            f"{summary['questions']} questions, {summary['rollouts']} rollouts "
            f"({summary['samples_per_question']} per question)."
        ),
        "",
        "| metric | value |",
        "|---|---|",
    ]
    skip = {
        "questions",
        "rollouts",
        "samples_per_question",
        "format_errors",
        "tool_calls/histogram",
        "meta",
        "entity_comparison",
        "match_rate_histogram",
        "accuracy_by_entities_matched",
        "accuracy_by_match_rate",
    }
    for k, v in summary.items():
        if k not in skip:
            lines.append(f"| {k} | {format_value(k, v)} |")
    kinds = summary.get("format_errors") or {}
    if kinds:
        lines += ["", "Format errors by kind (share of all rollouts):", ""]
        lines += [f"- {k}: {format_value('format_error_rate', v)}" for k, v in kinds.items()]
    calls = summary.get("tool_calls/histogram") or {}
    if calls:
        lines += ["", "Tool calls per rollout (share of rollouts): " + ", ".join(
            f"{c}: {format_value('format_error_rate', v)}" for c, v in calls.items())]
    c = summary["entity_comparison"]
    lines += [
        "",
        "## Entity analysis",
        "",
        (
            f"Of {c['questions']} questions with entities, {c['mixed_questions']} have both correct and wrong "
            f"rollouts. Correct rollouts have the higher mean entity match rate in **{c['correct_higher']}** of "
            f"them, wrong rollouts in **{c['wrong_higher']}**, ties in {c['ties']} "
            f"(all correct: {c['all_correct']}, all wrong: {c['all_wrong']})."
        ),
        "",
        "| entities matched | rollouts | accuracy |",
        "|---|---|---|",
    ]
    for r in summary["accuracy_by_entities_matched"]:
        lines.append(f"| {r['matched']} | {r['rollouts']} | {100 * r['accuracy']:.1f}% |")
    for name, rel in (plots or {}).items():
        lines += ["", f"![{name}]({rel.as_posix()})"]
    lines.append("")
    return "\n".join(lines)


def format_value(key: str, v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if key.startswith(_PERCENT_PREFIXES):
        return f"{100 * v:.1f}%"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


# --- comparison over runs ---------------------------------------------------------------------


def load_summary(run_dir: str | Path) -> dict:
    path = Path(run_dir) / SUMMARY_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no summary (write it with write_run_report / egrpo eval)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def lookup(summary: Mapping, key: str):
    """Value at a key, or a dotted path into nested dicts ("entity_comparison.correct_higher")."""
    if key in summary:
        return summary[key]
    node = summary
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def aggregate(summaries: Sequence[Mapping], keys: Sequence[str] = DEFAULT_COMPARE_KEYS) -> dict[str, dict]:
    """Per key: mean, sample std (ddof=1; 0 for a single run), min, max and n over the runs that have it."""
    out = {}
    for key in keys:
        vals = [lookup(s, key) for s in summaries]
        vals = [
            float(v)
            for v in vals
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ]
        if not vals:
            out[key] = {"mean": None, "std": None, "min": None, "max": None, "n": 0}
            continue
        arr = np.asarray(vals)
        out[key] = {
            "mean": float(arr.mean()),
            "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "min": float(arr.min()),
            "max": float(arr.max()),
            "n": len(vals),
        }
    return out


def comparison_table(
    runs: Mapping[str, Sequence[Mapping]], keys: Sequence[str] = DEFAULT_COMPARE_KEYS
) -> str:
    """Markdown table: one row per run group (e.g. "GRPO", "E-GRPO a=0.3"), cells "mean ± std"."""
    header = "| run | seeds | " + " | ".join(keys) + " |"
    lines = [header, "|---" * (len(keys) + 2) + "|"]
    for name, summaries in runs.items():
        agg = aggregate(summaries, keys)
        cells = []
        for k in keys:
            a = agg[k]
            if a["n"] == 0:
                cells.append("n/a")
            elif a["n"] == 1:
                cells.append(format_value(k, a["mean"]))
            else:
                cells.append(f"{format_value(k, a['mean'])} ± {format_value(k, a['std'])}")
        lines.append(f"| {name} | {len(summaries)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
