import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from egrpo_jax.agent.trajectory import ANSWERED, FORMAT_ERROR, OVERLENGTH, Trajectory
from egrpo_jax.rewards.egrpo import alpha_schedule, egrpo_rewards, score_group


def test_mixed_group_hand_computed():
    # rollouts: correct, wrong g=.5, wrong g=.25, error g=1.0 (error excluded from the max)
    r = egrpo_rewards([1, 0, 0, 0], [0.5, 0.5, 0.25, 1.0], [0, 0, 0, 1], alpha=0.3)
    np.testing.assert_allclose(r, [1.0, 0.3, 0.15, 0.0])


def test_correct_rollouts_count_toward_the_max():
    r = egrpo_rewards([1, 0], [1.0, 0.5], [0, 0], alpha=0.4)
    np.testing.assert_allclose(r, [1.0, 0.2])


def test_all_wrong_all_correct_all_error():
    np.testing.assert_allclose(egrpo_rewards([0, 0, 0], [0.2, 0.4, 0.0], [0, 0, 0], 0.3), [0.15, 0.3, 0.0])
    np.testing.assert_allclose(egrpo_rewards([1, 1], [0.0, 0.3], [0, 0], 0.3), [1.0, 1.0])
    np.testing.assert_allclose(egrpo_rewards([0, 0], [0.7, 1.0], [1, 1], 0.3), [0.0, 0.0])
    np.testing.assert_allclose(egrpo_rewards([0, 0], [0.0, 0.0], [0, 0], 0.3), [0.0, 0.0])  # max 0


def test_alpha_zero_is_grpo():
    correct = [1, 0, 0, 1, 0]
    errors = [0, 0, 1, 0, 0]
    r = egrpo_rewards(correct, [0.2, 0.9, 0.5, 0.1, 0.3], errors, alpha=0.0)
    np.testing.assert_array_equal(r, [1.0, 0.0, 0.0, 1.0, 0.0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal 1-D"):
        egrpo_rewards([1], [0.1, 0.2], [0], 0.3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        egrpo_rewards([1], [1.5], [0], 0.3)
    with pytest.raises(ValueError, match="alpha"):
        egrpo_rewards([1], [0.5], [0], -0.1)


@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1), st.booleans()), min_size=1, max_size=8),
    st.floats(0, 1),
)
def test_property_bounds(rows, alpha):
    c, g, e = map(list, zip(*rows))
    r = egrpo_rewards(c, g, e, alpha)
    assert np.all(r >= 0) and np.all(r <= 1)
    assert np.all(r[np.array(e)] == 0)
    ok = ~np.array(e)
    assert np.all(r[np.array(c) & ok] == 1)
    wrong = ok & ~np.array(c)
    assert np.all(r[wrong] <= alpha + 1e-12)


def test_alpha_schedules():
    const = alpha_schedule("constant", 0.3)
    assert const(0) == const(1000) == 0.3
    lin = alpha_schedule("linear", 0.3, final=0.0, steps=10)
    assert lin(0) == pytest.approx(0.3)
    assert lin(5) == pytest.approx(0.15)
    assert lin(10) == lin(99) == 0.0
    with pytest.raises(ValueError, match="alpha_schedule"):
        alpha_schedule("cosine", 0.3)
    with pytest.raises(ValueError, match="alpha_decay_steps"):
        alpha_schedule("linear", 0.3, steps=0)


def _traj(status, thoughts, answer):
    return Trajectory("q", [1, 2], [0, 1], [0.0, -1.0], 1, thoughts, [], answer, status)


def test_score_group_from_trajectories():
    trajs = [
        _traj(ANSWERED, ["Paris is in France"], "Paris"),
        _traj(ANSWERED, ["France maybe"], "Lyon"),
        _traj(FORMAT_ERROR, ["Paris France"], None),
        _traj(OVERLENGTH, ["Paris France"], None),
    ]
    s = score_group(trajs, ["Paris"], ["Paris", "France"], alpha=0.3)
    np.testing.assert_array_equal(s.correct, [True, False, False, False])
    np.testing.assert_allclose(s.match_rates, [1.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(s.rewards, [1.0, 0.15, 0.0, 0.0])


def test_an_error_rollout_above_a_tiny_group_max_neither_overflows_nor_scores():
    # gmax runs over non-error rows only, so an error row's gamma / gmax can overflow: it must not
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = egrpo_rewards([False, False], [1e-310, 1.0], [False, True], 0.3)
    assert r[0] == pytest.approx(0.3, rel=1e-9) and r[1] == 0.0  # 1e-310 is subnormal: ~14 digits
