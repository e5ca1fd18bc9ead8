"""Rewards: answer correctness, entity match in thoughts, E-GRPO group rewards, the rl.reward hook's
records (pure Python/NumPy)."""

from egrpo_jax.rewards.answer import answer_correct, normalize_answer, token_f1
from egrpo_jax.rewards.api import QuestionView, RewardError, RewardSettings, RolloutView
from egrpo_jax.rewards.egrpo import GroupScore, alpha_schedule, egrpo_reward, egrpo_rewards, score_group
from egrpo_jax.rewards.entities import grounded_entities, match_rate, matched_entities, normalize_text

__all__ = [
    "GroupScore", "QuestionView", "RewardError", "RewardSettings", "RolloutView", "alpha_schedule", "answer_correct",
    "egrpo_reward", "egrpo_rewards", "grounded_entities", "match_rate", "matched_entities", "normalize_answer",
    "normalize_text", "score_group", "token_f1",
]
