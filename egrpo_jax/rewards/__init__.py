"""Rewards: answer correctness, entity match in thoughts, E-GRPO group rewards (pure Python/NumPy)."""

from egrpo_jax.rewards.answer import answer_correct, normalize_answer, token_f1
from egrpo_jax.rewards.egrpo import GroupScore, alpha_schedule, egrpo_rewards, score_group
from egrpo_jax.rewards.entities import match_rate, matched_entities, normalize_text

__all__ = [
    "GroupScore", "alpha_schedule", "answer_correct", "egrpo_rewards", "match_rate", "matched_entities",
    "normalize_answer", "normalize_text", "score_group", "token_f1",
]
