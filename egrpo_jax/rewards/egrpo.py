"""E-GRPO group rewards and the alpha schedule (PAPER.md, "Reward").

R_i = 1 if rollout i answered correctly; alpha * gamma_i / max_j gamma_j if it answered wrongly,
where the max runs over the NON-error rollouts of the group (our documented choice; 0 when that
max is 0); 0 on a format error or overlength. alpha = 0 is exactly GRPO's 0/1 reward.
`egrpo_reward` is this reward as an rl.reward hook (rewards/api.py); `score_group` scores a group
through whichever hook the run names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from egrpo_jax.config import ALPHA_SCHEDULES
from egrpo_jax.rewards.answer import answer_correct
from egrpo_jax.rewards.api import (
    QuestionView,
    RewardFn,
    RewardSettings,
    RolloutView,
    call_reward,
    credit_rate,
)


def egrpo_rewards(
    correct: Sequence[bool], match_rates: Sequence[float], errors: Sequence[bool], alpha: float
) -> np.ndarray:
    """Rewards of one group of G rollouts, float64 [G]."""
    correct = np.asarray(correct, dtype=bool)
    gamma = np.asarray(match_rates, dtype=np.float64)
    errors = np.asarray(errors, dtype=bool)
    if not (correct.shape == gamma.shape == errors.shape) or correct.ndim != 1:
        raise ValueError(
            f"egrpo_rewards: correct {correct.shape}, match_rates {gamma.shape}, errors {errors.shape} "
            "must be equal 1-D shapes"
        )
    if np.any((gamma < 0) | (gamma > 1)) or not np.all(np.isfinite(gamma)):
        raise ValueError(f"egrpo_rewards: match_rates must lie in [0, 1], got {gamma.tolist()}")
    if alpha < 0:
        raise ValueError(f"egrpo_rewards: alpha must be >= 0, got {alpha}")
    ok = ~errors
    gmax = gamma[ok].max() if ok.any() else 0.0
    # only over non-error rows: an error row's gamma may exceed gmax (and overflow a tiny one); same
    # operation order as alpha * gamma / gmax, so rewards keep their bits
    partial = (np.divide(alpha * gamma, gmax, out=np.zeros_like(gamma), where=ok) if gmax > 0
               else np.zeros_like(gamma))
    rewards = np.where(correct, 1.0, partial)
    return np.where(errors, 0.0, rewards)


def alpha_schedule(kind: str, alpha: float, final: float = 0.0, steps: int = 0) -> Callable[[int], float]:
    """alpha as a function of the training step.

    constant: alpha at every step. linear: alpha at step 0 moving linearly to `final` at step
    `steps`, then `final` (the paper's 0.3 -> 0 ablation).
    """
    if kind not in ALPHA_SCHEDULES:
        raise ValueError(f"rl.alpha_schedule must be one of {ALPHA_SCHEDULES}, got {kind!r}")
    if kind == "constant":
        return lambda step: float(alpha)
    if steps <= 0:
        raise ValueError(f"rl.alpha_decay_steps must be > 0 for a linear schedule, got {steps}")

    def linear(step: int) -> float:
        frac = min(max(step, 0), steps) / steps
        return float(alpha + (final - alpha) * frac)

    return linear


def _correct(rollout: RolloutView, question: QuestionView) -> bool:
    """Answered (no format error, not overlength) and an exact match of a gold answer."""
    return not rollout.is_error and answer_correct(rollout.answer, question.answers)


def egrpo_reward(rollouts: Sequence[RolloutView], question: QuestionView, settings: RewardSettings) -> np.ndarray:
    """The paper's reward as an rl.reward hook ("egrpo"): exact match against the gold answers, gamma
    from the entities credited under settings.entity_credit."""
    correct = [_correct(r, question) for r in rollouts]
    rates = [credit_rate(r, question, settings.entity_credit, settings.strict_match) for r in rollouts]
    return egrpo_rewards(correct, rates, [r.is_error for r in rollouts], settings.alpha)


@dataclasses.dataclass
class GroupScore:
    """One group's rewards (from the rl.reward hook) and the facts the metrics read, whatever the reward."""

    rewards: np.ndarray  # [G]
    correct: np.ndarray  # bool [G]: exact match of the answer, errors never correct
    match_rates: np.ndarray  # gamma_i under the group's entity credit, float [G]
    errors: np.ndarray  # bool [G]: format error or overlength
    rollouts: tuple[RolloutView, ...]  # what the reward saw
    question: QuestionView


def score_group(
    trajectories: Sequence,
    answers: Sequence[str],
    entities: Sequence,
    alpha: float,
    *,
    strict: bool = False,
    credit: str = "thought",
    question: str = "",
    reward: RewardFn = egrpo_reward,
    step: int = 0,
) -> GroupScore:
    """Scores of the G trajectories (agent.trajectory.Trajectory) of one question: `reward` (the rl.reward
    hook, E-GRPO by default) gives the rewards; `question` is the question's text (grounded credit)."""
    views = tuple(RolloutView.of(t) for t in trajectories)
    q = QuestionView.of(question, answers, entities)
    settings = RewardSettings(alpha=float(alpha), entity_credit=credit, strict_match=strict, step=step)
    rewards = call_reward(reward, views, q, settings)
    errors = np.array([v.is_error for v in views], dtype=bool)
    correct = np.array([_correct(v, q) for v in views], dtype=bool)
    rates = np.array([credit_rate(v, q, credit, strict) for v in views], dtype=np.float64)
    return GroupScore(rewards, correct, rates, errors, views, q)
