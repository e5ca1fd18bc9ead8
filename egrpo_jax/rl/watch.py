"""Per-step watches on what the reward does (pure; logged by rl.loop, reported by e2e.replicate_report).

Group composition: the fraction of a step's groups that are all correct, mixed, all wrong, and all
wrong yet split by the reward (an all-wrong group whose rewards are not all equal: E-GRPO's partial
credit gives it a gradient, GRPO's 0/1 reward cannot). Format errors and overlength count as wrong;
"split" uses the same tolerance as rl.dynamic_sampling (rl.advantages.informative_groups).

Reward-hacking watch: thought tokens per rollout, gold-entity mentions per thought, and the share of
the entities named in thoughts (what the paper's rule credits) that the rollout had not read before
naming them, in the question or an earlier tool response ("unearned"). The share is taken over the
thought rule whatever rl.entity_credit is, so arms with either credit compare on one scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from egrpo_jax.rewards.api import credited_entities
from egrpo_jax.rewards.egrpo import GroupScore
from egrpo_jax.rewards.entities import entity_mentions
from egrpo_jax.rl.advantages import informative_groups

COMPOSITION = ("groups/all_correct", "groups/mixed", "groups/all_wrong", "groups/all_wrong_split")
WATCH = ("hacking/think_tokens", "hacking/entities_per_thought", "hacking/unearned_share")


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else float("nan")


def group_composition(scores: Sequence[GroupScore], tol: float = 1e-6) -> dict[str, float]:
    """COMPOSITION fractions over the groups of `scores` (NaN without groups)."""
    right = np.array([s.correct.sum() for s in scores], np.int64)
    size = np.array([s.correct.size for s in scores], np.int64)
    split = np.array([bool(informative_groups(s.rewards, len(s.rewards), tol)[0]) for s in scores], bool)
    wrong = right == 0
    counts = (right == size, (right > 0) & (right < size), wrong, wrong & split)
    return {k: _ratio(c.sum(), len(scores)) for k, c in zip(COMPOSITION, counts)}


def hacking_watch(scores: Sequence[GroupScore], think_tokens: Sequence[int], strict: bool = False) -> dict[str, float]:
    """WATCH values over every rollout of `scores`; `think_tokens[j]` is rollout j's thought tokens
    (rollouts in group order), counted by the caller's tokenizer. NaN where a denominator is 0."""
    pairs = [(r, s.question) for s in scores for r in s.rollouts]
    if len(think_tokens) != len(pairs):
        raise ValueError(f"hacking_watch: {len(think_tokens)} thought-token counts for {len(pairs)} rollouts")
    thoughts = sum(len(r.thoughts) for r, _ in pairs)
    mentions = sum(entity_mentions(r.thoughts, q.entities, strict) for r, q in pairs)
    named = grounded = 0
    for r, q in pairs:
        named += len(credited_entities(r, q, "thought", strict))
        grounded += len(credited_entities(r, q, "grounded", strict))
    return {"hacking/think_tokens": _ratio(sum(think_tokens), len(pairs)),
            "hacking/entities_per_thought": _ratio(mentions, thoughts),
            "hacking/unearned_share": _ratio(named - grounded, named)}
