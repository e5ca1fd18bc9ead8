"""Example rl.reward hooks (docs/rewards.md): copy one into your own module to start a reward.

    egrpo train --config configs/tiny_cpu.py --config.rl.reward=egrpo_jax.rewards.examples:token_f1_reward

A reward gets one group (rewards/api.py: the G RolloutViews, the QuestionView, the RewardSettings)
and returns G floats; GRPO's advantage subtracts the group mean, so only differences within a
group matter.
"""

from __future__ import annotations

from collections.abc import Sequence

from egrpo_jax.rewards.answer import token_f1
from egrpo_jax.rewards.api import QuestionView, RewardSettings, RolloutView


def token_f1_reward(rollouts: Sequence[RolloutView], question: QuestionView, settings: RewardSettings) -> list[float]:
    """Partial credit for the answer itself: its best token F1 against the gold answer and aliases
    (1 for an exact match, 2/3 for "Paris France" against "Paris"); 0 on a format error or
    overlength, as in E-GRPO. `settings` is unused: this reward has no alpha and reads no thoughts."""
    return [0.0 if r.is_error else token_f1(r.answer, question.answers) for r in rollouts]
