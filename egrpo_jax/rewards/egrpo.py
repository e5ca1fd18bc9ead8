"""E-GRPO group rewards and the alpha schedule (PAPER.md, "Reward").

R_i = 1 if rollout i answered correctly; alpha * gamma_i / max_j gamma_j if it answered wrongly,
where the max runs over the NON-error rollouts of the group (our documented choice; 0 when that
max is 0); 0 on a format error or overlength. alpha = 0 is exactly GRPO's 0/1 reward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from egrpo_jax.config import ALPHA_SCHEDULES
from egrpo_jax.rewards.answer import Judge, answer_correct
from egrpo_jax.rewards.entities import match_rate


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


@dataclasses.dataclass
class GroupScore:
    rewards: np.ndarray  # [G]
    correct: np.ndarray  # bool [G]
    match_rates: np.ndarray  # gamma_i, float [G]
    errors: np.ndarray  # bool [G]: format error or overlength


def score_group(
    trajectories: Sequence,
    answers: Sequence[str],
    entities: Sequence,
    alpha: float,
    *,
    strict: bool = False,
    judge: Judge | None = None,
) -> GroupScore:
    """Rewards for the G trajectories (agent.trajectory.Trajectory) of one question."""
    errors = np.array([t.is_error for t in trajectories], dtype=bool)
    correct = np.array(
        [(not e) and answer_correct(t.answer, answers, judge) for t, e in zip(trajectories, errors)], dtype=bool
    )
    rates = np.array([match_rate(t.thoughts, entities, strict=strict) for t in trajectories], dtype=np.float64)
    return GroupScore(egrpo_rewards(correct, rates, errors, alpha), correct, rates, errors)
