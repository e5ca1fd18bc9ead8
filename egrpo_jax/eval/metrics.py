"""Evaluation metrics over scored rollouts: Pass@1, Pass@k, answer F1, tool calls, errors, tokens.

Two layers, both pure:
- `score_rollouts` turns Trajectories + their QARecords into flat `RolloutScore`s (answer
  correctness and entity matching come from egrpo_jax.rewards, so evaluation and the training
  reward agree on what "correct" and "matched" mean);
- `summarize` and the estimators below reduce those scores to numbers.

A rollout that ended in a format error or overlength counts as wrong (it earns no reward either).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from egrpo_jax.agent.trajectory import ANSWERED, FORMAT_ERROR, OVERLENGTH, Trajectory
from egrpo_jax.data.schema import QARecord
from egrpo_jax.rewards.answer import Judge, answer_correct, token_f1
from egrpo_jax.rewards.entities import matched_entities


NEAR_MISS_MATCH = 0.5  # a wrong rollout whose entity match is at least this is a near-miss


@dataclasses.dataclass(frozen=True)
class RolloutScore:
    """Everything the metrics and the entity analysis need from one rollout."""

    question_id: str
    sample: int  # index of this rollout among the samples of its question (order of appearance)
    status: str
    format_error: str | None
    answer: str | None
    correct: bool
    f1: float
    num_tool_calls: int
    num_model_tokens: int  # tokens written by the model (loss-mask ones)
    num_tokens: int  # model + host tokens after the prompt
    entities_total: int  # ground-truth entities of the question
    entities_matched: int  # of those, how many appear in the rollout's <think> blocks

    @property
    def match_rate(self) -> float | None:
        """gamma = matched / total; None when the question has no entities."""
        return self.entities_matched / self.entities_total if self.entities_total else None

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["match_rate"] = self.match_rate
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> RolloutScore:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(d)
        if missing:
            raise ValueError(f"rollout score is missing field(s) {sorted(missing)}")
        return cls(**{k: d[k] for k in names})


def score_rollout(
    traj: Trajectory, record: QARecord, sample: int = 0, *, strict: bool = False, judge: Judge | None = None
) -> RolloutScore:
    """strict: the paper's literal case-sensitive substring match; judge: replaces exact match."""
    if traj.question_id != record.id:
        raise ValueError(
            f"trajectory question_id {traj.question_id!r} does not match record id {record.id!r}"
        )
    answered = traj.status == ANSWERED and traj.answer is not None
    correct = bool(answered and answer_correct(traj.answer, record.answers, judge=judge))
    f1 = token_f1(traj.answer, record.answers) if answered else 0.0
    matched = matched_entities(traj.thoughts, record.entities, strict=strict) if record.entities else []
    return RolloutScore(
        question_id=traj.question_id,
        sample=sample,
        status=traj.status,
        format_error=traj.format_error if traj.status == FORMAT_ERROR else None,
        answer=traj.answer,
        correct=correct,
        f1=float(f1),
        num_tool_calls=traj.num_tool_calls,
        num_model_tokens=traj.num_model_tokens,
        num_tokens=len(traj.tokens) - traj.prompt_len,
        entities_total=len(record.entities),
        entities_matched=len(matched),
    )


def score_rollouts(
    trajectories: Iterable[Trajectory],
    records: Iterable[QARecord] | Mapping[str, QARecord],
    *,
    strict: bool = False,
    judge: Judge | None = None,
) -> list[RolloutScore]:
    """Score every trajectory against its record; `sample` counts rollouts per question in order."""
    by_id = dict(records) if isinstance(records, Mapping) else {r.id: r for r in records}
    seen: Counter[str] = Counter()
    out = []
    for t in trajectories:
        rec = by_id.get(t.question_id)
        if rec is None:
            raise KeyError(
                f"trajectory for unknown question_id {t.question_id!r} (not among {len(by_id)} records)"
            )
        out.append(score_rollout(t, rec, seen[t.question_id], strict=strict, judge=judge))
        seen[t.question_id] += 1
    return out


# --- estimators -------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased Pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k).

    Computed as a product so large n does not overflow: 1 - prod_{i=n-c+1..n} (1 - k / i).
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def group_by_question(scores: Iterable[RolloutScore]) -> dict[str, list[RolloutScore]]:
    """Scores per question, each list ordered by sample index; questions in first-seen order."""
    groups: dict[str, list[RolloutScore]] = defaultdict(list)
    for s in scores:
        groups[s.question_id].append(s)
    return {q: sorted(v, key=lambda s: s.sample) for q, v in groups.items()}


def pass_metrics(scores: Sequence[RolloutScore], ks: Sequence[int]) -> dict[str, float]:
    """pass@k (unbiased, from all n samples) and any@k (any of the first k samples correct), per k.

    pass@1 is the mean over questions of the fraction of correct samples.
    """
    groups = group_by_question(scores)
    if not groups:
        raise ValueError("no rollouts to evaluate")
    n_min = min(len(v) for v in groups.values())
    out: dict[str, float] = {}
    for k in ks:
        if k > n_min:
            raise ValueError(f"pass@{k} needs at least {k} samples per question; some question has {n_min}")
        out[f"pass@{k}"] = _mean(pass_at_k(len(v), sum(s.correct for s in v), k) for v in groups.values())
        out[f"any@{k}"] = _mean(float(any(s.correct for s in v[:k])) for v in groups.values())
    return out


def summarize(scores: Sequence[RolloutScore], ks: Sequence[int] | None = None) -> dict:
    """All headline numbers of one evaluation as a flat JSON-able dict.

    ks defaults to (1, n) where n is the smallest number of samples any question has.
    """
    scores = list(scores)
    groups = group_by_question(scores)
    if not groups:
        raise ValueError("no rollouts to evaluate")
    n_min = min(len(v) for v in groups.values())
    ks = sorted(set(ks if ks is not None else (1, n_min)))
    n = len(scores)
    kinds = Counter(s.format_error or "unknown" for s in scores if s.status == FORMAT_ERROR)
    out: dict = {
        "questions": len(groups),
        "rollouts": n,
        "samples_per_question": n_min,
        **pass_metrics(scores, ks),
        "accuracy": _mean(float(s.correct) for s in scores),
        "f1": _mean(s.f1 for s in scores),
        "tool_calls/mean": _mean(s.num_tool_calls for s in scores),
        "tokens/mean": _mean(s.num_model_tokens for s in scores),
        "tokens_total/mean": _mean(s.num_tokens for s in scores),
        "answered_rate": sum(s.status == ANSWERED for s in scores) / n,
        "format_error_rate": sum(s.status == FORMAT_ERROR for s in scores) / n,
        "overlength_rate": sum(s.status == OVERLENGTH for s in scores) / n,
        "format_errors": {k: v / n for k, v in sorted(kinds.items())},
    }
    rated = [s for s in scores if s.match_rate is not None]
    out["entity_match/all"] = _mean_or_none(s.match_rate for s in rated)
    out["entity_match/correct"] = _mean_or_none(s.match_rate for s in rated if s.correct)
    out["entity_match/wrong"] = _mean_or_none(s.match_rate for s in rated if not s.correct)
    # near-misses: wrong rollouts that still found half the gold entities; E-GRPO's partial reward
    # can only rank rollouts when such rollouts exist (PAPER.md: the method's premise)
    wrong = [s.match_rate for s in rated if not s.correct]
    out["near_miss/wrong_rate"] = _mean_or_none(float(m >= NEAR_MISS_MATCH) for m in wrong)
    calls = Counter(s.num_tool_calls for s in scores)
    out["tool_calls/std"] = float(np.std([s.num_tool_calls for s in scores]))
    out["tool_calls/histogram"] = {str(c): calls[c] / n for c in sorted(calls)}
    return out


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return float(sum(xs) / len(xs)) if xs else 0.0


def _mean_or_none(xs: Iterable[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(sum(xs) / len(xs)) if xs else None
