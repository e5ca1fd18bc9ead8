"""The paper's entity analysis (Claim 1) and training-curve plots.

- `entity_comparison`: for each question with both correct and wrong rollouts, do the correct
  ones have the higher mean entity match rate? (the paper counts 1939 questions vs 487).
- `match_rate_histogram`: match-rate distributions of correct and wrong rollouts (the paper's
  wrong-rollout density is bimodal: a peak at 0 plus near-misses).
- `accuracy_by_entities_matched` / `accuracy_by_match_rate`: accuracy as a function of matching.
- `read_metrics_jsonl` + `plot_training_curves` / `plot_grouped_curves`: PNGs from training logs.

Every rollout that is not correct counts as wrong here, format errors and overlength included,
so the analysis sees the same split as the reward. Questions without entities are skipped.
Plots use matplotlib's object API (Figure + Agg canvas): no pyplot global state, no display.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from egrpo_jax.eval.metrics import RolloutScore, group_by_question


@dataclasses.dataclass(frozen=True)
class EntityComparison:
    correct_higher: int  # questions whose correct rollouts have the higher mean match rate
    wrong_higher: int
    ties: int
    mixed_questions: int  # questions with at least one correct and one wrong rollout
    questions: int  # questions with entities
    all_correct: int
    all_wrong: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def entity_comparison(scores: Sequence[RolloutScore], tol: float = 1e-9) -> EntityComparison:
    """Per mixed question: mean match rate of correct rollouts vs of wrong ones (ties within tol)."""
    higher = lower = ties = mixed = n_q = all_c = all_w = 0
    for rollouts in group_by_question(scores).values():
        rated = [s for s in rollouts if s.match_rate is not None]
        if not rated:
            continue
        n_q += 1
        good = [s.match_rate for s in rated if s.correct]
        bad = [s.match_rate for s in rated if not s.correct]
        if not bad:
            all_c += 1
            continue
        if not good:
            all_w += 1
            continue
        mixed += 1
        diff = float(np.mean(good)) - float(np.mean(bad))
        if diff > tol:
            higher += 1
        elif diff < -tol:
            lower += 1
        else:
            ties += 1
    return EntityComparison(higher, lower, ties, mixed, n_q, all_c, all_w)


def match_rate_histogram(scores: Sequence[RolloutScore], bins: int = 10) -> dict:
    """Counts and densities of match rates in `bins` equal bins over [0, 1], correct vs wrong.

    The last bin is closed ([0.9, 1.0]) so a full match lands in it.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    out: dict = {"edges": edges.tolist()}
    for name, want in (("correct", True), ("wrong", False)):
        rates = np.asarray([s.match_rate for s in scores if s.match_rate is not None and s.correct == want])
        counts, _ = np.histogram(rates, bins=edges)
        total = int(counts.sum())
        out[name] = counts.astype(int).tolist()
        # density integrates to 1 over [0, 1] (bin width 1/bins), comparable across groups of any size
        out[f"{name}_density"] = (counts * bins / total).tolist() if total else [0.0] * bins
        out[f"{name}_n"] = total
    return out


def accuracy_by_entities_matched(scores: Sequence[RolloutScore]) -> list[dict]:
    """Rows (matched, rollouts, correct, accuracy) per number of entities matched, ascending."""
    buckets: dict[int, list[bool]] = defaultdict(list)
    for s in scores:
        if s.entities_total:
            buckets[s.entities_matched].append(s.correct)
    return [
        {"matched": m, "rollouts": len(v), "correct": int(sum(v)), "accuracy": sum(v) / len(v)}
        for m, v in sorted(buckets.items())
    ]


def accuracy_by_match_rate(scores: Sequence[RolloutScore], bins: int = 5) -> list[dict]:
    """Rows (lo, hi, rollouts, correct, accuracy) per match-rate bin; empty bins have accuracy None."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        last = i == bins - 1
        hits = [
            s.correct
            for s in scores
            if s.match_rate is not None
            and lo <= s.match_rate
            and (s.match_rate < hi or (last and s.match_rate <= hi))
        ]
        rows.append(
            {
                "lo": float(lo),
                "hi": float(hi),
                "rollouts": len(hits),
                "correct": int(sum(hits)),
                "accuracy": sum(hits) / len(hits) if hits else None,
            }
        )
    return rows


# --- plots ------------------------------------------------------------------------------------


def _figure(width: float = 6.0, height: float = 4.0):
    fig = Figure(figsize=(width, height), dpi=100)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_match_rate_distribution(hist: Mapping, path: str | Path) -> Path:
    """Side-by-side density bars of correct vs wrong rollouts' match rates."""
    edges = np.asarray(hist["edges"])
    width = edges[1] - edges[0]
    centers = (edges[:-1] + edges[1:]) / 2
    fig = _figure()
    ax = fig.subplots()
    ax.bar(centers - width / 4, hist["correct_density"], width / 2, label=f"correct (n={hist['correct_n']})")
    ax.bar(centers + width / 4, hist["wrong_density"], width / 2, label=f"wrong (n={hist['wrong_n']})")
    ax.set_xlabel("entity match rate (matched / ground-truth entities)")
    ax.set_ylabel("density")
    ax.set_xlim(0, 1)
    ax.set_title("Entity match rate: correct vs wrong rollouts")
    ax.legend()
    return _save(fig, path)


def plot_accuracy_by_matched(rows: Sequence[Mapping], path: str | Path) -> Path:
    fig = _figure()
    ax = fig.subplots()
    xs = [r["matched"] for r in rows]
    ax.bar(xs, [r["accuracy"] for r in rows], color="tab:green")
    for r in rows:
        ax.annotate(f"n={r['rollouts']}", (r["matched"], r["accuracy"]), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("ground-truth entities matched in thoughts")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.1)
    ax.set_xticks(xs)
    ax.set_title("Accuracy by entities matched")
    return _save(fig, path)


# --- training curves --------------------------------------------------------------------------

# panel title -> metric keys drawn on it. Names follow the training metrics JSONL; override per call.
DEFAULT_PANELS: dict[str, tuple[str, ...]] = {
    "reward": ("reward/mean",),
    "accuracy": ("accuracy",),
    "entity match": ("entity_match/correct", "entity_match/wrong"),
    "tool calls per rollout": ("tool_calls/per_rollout",),  # rl.loop.rollout_metrics
}


def read_metrics_jsonl(path: str | Path) -> list[dict]:
    """One JSON object per line; blank lines skipped; anything else is a file:line error."""
    rows = []
    path = Path(path)
    with path.open() as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")  # noqa: TRY004
            rows.append(row)
    return rows


def series(rows: Sequence[Mapping], key: str, step_key: str = "step") -> tuple[list[float], list[float]]:
    """(steps, values) of one metric; rows without it (or non-finite) are skipped.

    Rows without `step_key` use their index, so logs that omit the step still plot.
    """
    xs, ys = [], []
    for i, r in enumerate(rows):
        v = r.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        xs.append(float(r.get(step_key, i)))
        ys.append(float(v))
    return xs, ys


def plot_training_curves(
    rows: Sequence[Mapping],
    path: str | Path,
    *,
    panels: Mapping[str, Sequence[str]] = DEFAULT_PANELS,
    step_key: str = "step",
    title: str | None = None,
) -> Path:
    """One PNG with a panel per entry of `panels`; a panel whose keys are all absent says so."""
    if not panels:
        raise ValueError("plot_training_curves: panels must not be empty")
    cols = min(2, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig = _figure(5.0 * cols, 3.2 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, cols)).ravel()
    for ax, (name, keys) in zip(axes, panels.items()):
        drawn = False
        for key in keys:
            xs, ys = series(rows, key, step_key)
            if xs:
                ax.plot(xs, ys, label=key, marker="." if len(xs) < 30 else None)
                drawn = True
        if drawn:
            if len(keys) > 1:
                ax.legend(fontsize=8)
        else:
            ax.text(
                0.5, 0.5, f"no data for {', '.join(keys)}", ha="center", va="center", transform=ax.transAxes
            )
        ax.set_title(name)
        ax.set_xlabel(step_key)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def grouped_series(
    runs: Sequence[Sequence[Mapping]], key: str, step_key: str = "step"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std and count of `key` across runs (e.g. seeds) at every step any run logged it."""
    per_step: dict[float, list[float]] = defaultdict(list)
    for rows in runs:
        for x, y in zip(*series(rows, key, step_key)):
            per_step[x].append(y)
    steps = np.asarray(sorted(per_step))
    vals = [per_step[s] for s in steps]
    mean = np.asarray([np.mean(v) for v in vals])
    std = np.asarray([np.std(v) for v in vals])
    count = np.asarray([len(v) for v in vals])
    return steps, mean, std, count


def plot_grouped_curves(
    groups: Mapping[str, Sequence[Sequence[Mapping]]],
    key: str,
    path: str | Path,
    *,
    step_key: str = "step",
    ylabel: str | None = None,
) -> Path:
    """One line per group (mean over its runs) with a +-1 std band: e.g. tool calls, GRPO vs E-GRPO."""
    fig = _figure()
    ax = fig.subplots()
    for label, runs in groups.items():
        steps, mean, std, _ = grouped_series(runs, key, step_key)
        if not len(steps):
            continue
        ax.plot(steps, mean, label=f"{label} (n={len(runs)})")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel(step_key)
    ax.set_ylabel(ylabel or key)
    ax.set_title(key)
    if groups:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_errorbars(xs: Sequence[float], means: Sequence[float], stds: Sequence[float], path: str | Path, *,
                   xlabel: str, ylabel: str, title: str, baseline: float | None = None,
                   baseline_label: str = "") -> Path:
    """Points with ±std bars (e.g. Pass@1 against alpha) and an optional horizontal baseline."""
    fig = _figure()
    ax = fig.subplots()
    ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3)
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="grey", label=baseline_label)
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)
