"""What a reward sees (the rl.reward hook, docs/rewards.md): one group of G rollouts of one question.

A reward is a function `reward(rollouts, question, settings) -> G floats`, called once per group:
`rollouts` are RolloutViews (answer, thoughts, tool responses, status), `question` the QuestionView
(text, gold answers, gold entities), `settings` the run's RewardSettings. `call_reward` checks what
it returns; every failure is one RewardError line naming the function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from egrpo_jax.config import ENTITY_CREDITS
from egrpo_jax.errors import one_line
from egrpo_jax.rewards.entities import EntitySpec, grounded_entities, matched_entities, variants

ANSWERED = "answered"  # agent.trajectory.ANSWERED (rewards sit below agent, so the name is repeated)


class RewardError(ValueError):
    """A reward function failed or returned something other than one finite float per rollout."""


@dataclasses.dataclass(frozen=True)
class RolloutView:
    """One rollout as a reward sees it."""

    answer: str | None  # text inside <answer>...</answer>; None without one
    thoughts: tuple[str, ...]  # every <think> block, in order
    tool_responses: tuple[str, ...]  # every tool response the rollout received, in order
    # per thought: how many of tool_responses the rollout had received when it wrote it (None: not
    # recorded, as in trajectories built by hand; only grounded credit needs it)
    responses_before: tuple[int, ...] | None
    status: str  # agent.trajectory.STATUSES: answered | format_error | overlength

    @property
    def is_error(self) -> bool:
        """A format error or overlength: E-GRPO gives it 0."""
        return self.status != ANSWERED

    @classmethod
    def of(cls, trajectory: Any) -> RolloutView:
        """The view of an agent.trajectory.Trajectory."""
        order = trajectory.responses_before
        return cls(answer=trajectory.answer, thoughts=tuple(trajectory.thoughts),
                   tool_responses=tuple(c.response for c in trajectory.tool_calls),
                   responses_before=None if order is None else tuple(order), status=trajectory.status)


@dataclasses.dataclass(frozen=True)
class QuestionView:
    """The question of a group with its gold answer (aliases after it) and gold entities."""

    text: str
    answers: tuple[str, ...]
    entities: tuple[tuple[str, ...], ...]  # each entity's surface variants, name first

    @classmethod
    def of(cls, text: str, answers: Sequence[str], entities: Sequence[EntitySpec]) -> QuestionView:
        return cls(text, tuple(answers), tuple(tuple(variants(e)) for e in entities))


@dataclasses.dataclass(frozen=True)
class RewardSettings:
    """The run's reward settings at this step."""

    alpha: float  # E-GRPO's partial-credit weight now (rl.alpha through rl.alpha_schedule)
    entity_credit: str = "thought"  # rl.entity_credit (ENTITY_CREDITS)
    strict_match: bool = False  # rl.strict_match: the paper's case-sensitive substring rule
    step: int = 0  # the RL step being scored (1-based; 0 outside a run)


RewardFn = Callable[[Sequence[RolloutView], QuestionView, RewardSettings], Sequence[float]]


def _thought_credit(rollout: RolloutView, question: QuestionView, strict: bool) -> set[int]:
    return matched_entities(rollout.thoughts, question.entities, strict)


def _grounded_credit(rollout: RolloutView, question: QuestionView, strict: bool) -> set[int]:
    if rollout.responses_before is None:
        raise ValueError("grounded entity credit needs each thought's place among the tool responses "
                         "(RolloutView.responses_before); this rollout does not record it")
    return grounded_entities(rollout.thoughts, rollout.responses_before, question.text, rollout.tool_responses,
                             question.entities, strict)


_CREDITS: dict[str, Callable[[RolloutView, QuestionView, bool], set[int]]] = {
    "thought": _thought_credit, "grounded": _grounded_credit,
}
assert tuple(_CREDITS) == ENTITY_CREDITS, "config.ENTITY_CREDITS names the credit rules above"


def credited_entities(rollout: RolloutView, question: QuestionView, credit: str = "thought",
                      strict: bool = False) -> set[int]:
    """Indices of the question's entities the rollout earns credit for under rl.entity_credit `credit`:
    "thought" (the paper) every entity named in a thought, "grounded" only those the rollout had read
    (question or an earlier tool response) before the thought that names them."""
    if credit not in _CREDITS:
        raise ValueError(f"rl.entity_credit must be one of {ENTITY_CREDITS}, got {credit!r}")
    return _CREDITS[credit](rollout, question, strict)


def credit_rate(rollout: RolloutView, question: QuestionView, credit: str = "thought", strict: bool = False) -> float:
    """gamma = |credited entities| / m; 0.0 for a question without entities."""
    if not question.entities:
        return 0.0
    return len(credited_entities(rollout, question, credit, strict)) / len(question.entities)


def reward_name(fn: Callable) -> str:
    """'module:function', as rl.reward spells it (for messages)."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"


def call_reward(fn: RewardFn, rollouts: Sequence[RolloutView], question: QuestionView,
                settings: RewardSettings) -> np.ndarray:
    """fn's rewards for one group, float64 [G], checked: one finite number per rollout."""
    name = reward_name(fn)
    try:
        out = fn(rollouts, question, settings)
    except Exception as e:  # the user's code: any failure is reported as the reward's, in one line
        raise RewardError(f"reward {name} raised {type(e).__name__}: {one_line(e)}") from e
    try:
        r = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise RewardError(f"reward {name} returned {type(out).__name__} {str(out)[:80]!r}: must be one float "
                          "per rollout") from None
    if r.shape != (len(rollouts),):
        raise RewardError(f"reward {name} returned shape {r.shape} for a group of {len(rollouts)} rollouts: "
                          "must be one float per rollout")
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        raise RewardError(f"reward {name} returned {float(r[bad[0]])} for rollout {int(bad[0])}: rewards must be finite")
    return r
