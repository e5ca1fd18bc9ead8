"""rl/watch.py: group composition and the reward-hacking watch, hand-computed."""

import math

import numpy as np
import pytest

from egrpo_jax.agent.trajectory import ANSWERED, FORMAT_ERROR, ToolCallRecord, Trajectory
from egrpo_jax.rewards.api import QuestionView
from egrpo_jax.rewards.egrpo import GroupScore, score_group
from egrpo_jax.rl.watch import COMPOSITION, WATCH, group_composition, hacking_watch


def _group(correct, rewards):
    n = len(correct)
    return GroupScore(np.asarray(rewards, np.float64), np.asarray(correct, bool), np.zeros(n), np.zeros(n, bool),
                      (), QuestionView("q", ("a",), ()))


def test_group_composition_hand_checked():
    groups = [
        _group([1, 1, 1], [1, 1, 1]),  # all correct
        _group([1, 0, 0], [1, 0.3, 0]),  # mixed
        _group([0, 0, 0], [0, 0, 0]),  # all wrong, nothing to learn
        _group([0, 0, 0], [0.3, 0.1, 0]),  # all wrong, split by partial credit: E-GRPO learns, GRPO cannot
        _group([0, 0, 0], [0.1, 0.1 + 1e-9, 0.1]),  # below the dynamic-sampling tolerance: not split
    ]
    m = group_composition(groups)
    assert m == pytest.approx({"groups/all_correct": 0.2, "groups/mixed": 0.2, "groups/all_wrong": 0.6,
                               "groups/all_wrong_split": 0.2})
    assert tuple(m) == COMPOSITION
    assert all(math.isnan(v) for v in group_composition([]).values())


def _traj(thoughts, before, responses, status=ANSWERED):
    calls = [ToolCallRecord("search", {"query": ["q"]}, r, True, 0.0) for r in responses]
    return Trajectory("q", [1], [1], [-1.0], 0, thoughts, calls, "Rhone", status, responses_before=before)


def test_hacking_watch_hand_computed():
    trajs = [
        # mentions 2 + 2; named Lyon, France, Rhone; grounded Lyon (question) and Rhone (the response
        # read before the second thought); France is named before any search and never read: unearned
        _traj(["Lyon is in France.", "The Rhone flows through Lyon."], [0, 1], ["Lyon lies on the Rhone."]),
        _traj(["France."], [0], [], FORMAT_ERROR),  # 1 mention, named France, unearned
        _traj([], [], []),  # no thoughts
    ]
    entities = [["Rhone", "Rhône"], "Lyon", "France"]
    s = score_group(trajs, ["Rhone"], entities, 0.3, question="Which river flows through Lyon?")
    m = hacking_watch([s], [7, 2, 0])
    # 3 thoughts, 5 mentions; 4 named, 2 grounded; (7 + 2 + 0) / 3 thought tokens
    assert m == pytest.approx({"hacking/think_tokens": 3.0, "hacking/entities_per_thought": 5 / 3,
                               "hacking/unearned_share": 0.5})
    assert tuple(m) == WATCH
    # the share is over the paper's thought credit, whatever the run's credit: a grounded run reads the same
    g = score_group(trajs, ["Rhone"], entities, 0.3, question="Which river flows through Lyon?", credit="grounded")
    assert hacking_watch([g], [7, 2, 0]) == m
    with pytest.raises(ValueError, match="2 thought-token counts for 3 rollouts"):
        hacking_watch([s], [1, 2])
    empty = hacking_watch([score_group([_traj([], [], [])], ["x"], ["y"], 0.3)], [0])
    assert empty["hacking/think_tokens"] == 0.0 and math.isnan(empty["hacking/entities_per_thought"])
    assert math.isnan(empty["hacking/unearned_share"])
