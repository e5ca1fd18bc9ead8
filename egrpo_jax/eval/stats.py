"""Paired comparisons of evaluation runs: per-question scores and bootstrap confidence intervals.

Runs are compared on the same held-out questions, and RL arms on the same seeds (same SFT start,
same question order, same sampling seeds), so the comparison is paired twice: the bootstrap
resamples QUESTIONS (one resample shared by every seed), and the statistic is the mean over seeds
and questions of the difference. That interval leaves out run-to-run spread (another training seed
is another policy), so with 2 or more paired runs the per-run differences also get a Student-t
interval over runs (seed_interval), and the effect those runs could detect (its power).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as _st


def per_question(rollouts: Iterable[Mapping]) -> dict[str, tuple[float, float]]:
    """Rollout rows (question_id, correct) -> {question_id: (Pass@1, Pass@k)} with k = samples per question.

    Pass@1 is the fraction of the k samples that are correct (the unbiased estimator); Pass@k is 1
    when any is (the unbiased estimator with n = k).
    """
    by_q: dict[str, list[bool]] = defaultdict(list)
    for r in rollouts:
        by_q[str(r["question_id"])].append(bool(r["correct"]))
    return {q: (float(np.mean(c)), float(any(c))) for q, c in by_q.items()}


@dataclasses.dataclass(frozen=True)
class PairedDiff:
    mean: float  # mean over seeds and questions of (a - b)
    lo: float  # 95% percentile bootstrap interval over questions
    hi: float
    seeds: int
    questions: int

    def points(self) -> str:
        """'+2.3 [+0.4, +4.1]' in percentage points."""
        return f"{100 * self.mean:+.1f} [{100 * self.lo:+.1f}, {100 * self.hi:+.1f}]"


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> PairedDiff:
    """a, b: [seeds, questions] scores of two arms on the same questions (row s of a pairs with row s of b)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"paired_bootstrap: a {a.shape} and b {b.shape} must be equal [seeds, questions] shapes")
    d = (a - b).mean(axis=0)  # [Q]: per-question difference, averaged over the paired seeds
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.shape[0], size=(n_boot, d.shape[0]))
    boots = d[idx].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(boots, [tail, 1 - tail])
    return PairedDiff(float(d.mean()), float(lo), float(hi), a.shape[0], a.shape[1])


def score_matrix(runs: Sequence[Mapping[str, tuple[float, float]]], questions: Sequence[str], which: int) -> np.ndarray:
    """[runs, questions] of Pass@1 (which = 0) or Pass@k (which = 1); every run must cover every question."""
    out = np.zeros((len(runs), len(questions)))
    for i, run in enumerate(runs):
        missing = [q for q in questions if q not in run]
        if missing:
            raise ValueError(f"score_matrix: run {i} has no rollouts for {len(missing)} question(s), e.g. {missing[0]}")
        out[i] = [run[q][which] for q in questions]
    return out


def _t(q: float, df: int) -> float:
    return float(_st.t.ppf(q, df))


@dataclasses.dataclass(frozen=True)
class SeedDiff:
    mean: float  # mean over paired runs of each run's mean difference over questions
    lo: float  # 95% Student-t interval over runs (n - 1 degrees of freedom)
    hi: float
    sd: float  # sample standard deviation of the per-run differences
    seeds: int

    def points(self) -> str:
        return f"{100 * self.mean:+.1f} [{100 * self.lo:+.1f}, {100 * self.hi:+.1f}]"

    def detectable(self, *, seeds: int | None = None, power: float = 0.8, level: float = 0.95) -> float:
        """The smallest true difference a two-sided t-test at `level` finds with probability `power`
        over `seeds` runs (default: these), if runs spread as these did: (t_{1-a/2} + t_power) * sd / sqrt(n),
        the usual approximation of the noncentral t."""
        n = self.seeds if seeds is None else seeds
        return (_t(1 - (1 - level) / 2, n - 1) + _t(power, n - 1)) * self.sd / float(np.sqrt(n))

    def seeds_to_detect(self, effect: float, *, power: float = 0.8, level: float = 0.95,
                        most: int = 1000) -> int | None:
        """How many paired runs detect a true difference of `effect` (None: more than `most`)."""
        return next((n for n in range(2, most + 1) if self.detectable(seeds=n, power=power, level=level) <= effect),
                    None)


def seed_interval(diffs: Sequence[float], *, level: float = 0.95) -> SeedDiff:
    """diffs: one difference per paired run (e.g. a run's Pass@1 minus its GRPO partner's)."""
    d = np.asarray(diffs, np.float64)
    if d.ndim != 1 or d.shape[0] < 2:
        raise ValueError(f"seed_interval: needs 2 or more paired runs, got {d.shape[0] if d.ndim == 1 else d.shape}")
    sd = float(d.std(ddof=1))
    half = _t(1 - (1 - level) / 2, d.shape[0] - 1) * sd / float(np.sqrt(d.shape[0]))
    return SeedDiff(float(d.mean()), float(d.mean() - half), float(d.mean() + half), sd, int(d.shape[0]))
