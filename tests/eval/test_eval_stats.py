import numpy as np
import pytest

from egrpo_jax.eval.stats import paired_bootstrap, per_question, score_matrix, seed_interval


def test_per_question_pass_at_1_and_k():
    rows = [{"question_id": "a", "correct": c} for c in (True, False, False)]
    rows += [{"question_id": "b", "correct": False}] * 3
    assert per_question(rows) == {"a": (pytest.approx(1 / 3), 1.0), "b": (0.0, 0.0)}


def test_paired_bootstrap_hand_checked():
    # two seeds, four questions; arm a beats b by exactly 0.25 on every question of every seed
    b = np.array([[0.0, 0.5, 1.0, 0.0], [0.5, 0.0, 0.5, 0.25]])
    d = paired_bootstrap(b + 0.25, b)
    assert d.mean == pytest.approx(0.25) and d.lo == pytest.approx(0.25) and d.hi == pytest.approx(0.25)
    assert (d.seeds, d.questions) == (2, 4)
    assert d.points() == "+25.0 [+25.0, +25.0]"


def test_paired_bootstrap_interval_covers_the_mean_and_shrinks_with_questions():
    rng = np.random.default_rng(0)
    widths = []
    for q in (50, 800):
        b = rng.random((3, q))
        a = b + rng.normal(0.02, 0.3, (3, q))
        d = paired_bootstrap(a, b, seed=1)
        assert d.lo <= d.mean <= d.hi
        widths.append(d.hi - d.lo)
    assert widths[1] < widths[0] / 2  # about 1 / sqrt(16) as wide


def test_paired_bootstrap_rejects_unpaired_shapes():
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap(np.zeros((2, 3)), np.zeros((3, 3)))


def test_score_matrix_needs_every_question():
    runs = [{"a": (0.5, 1.0), "b": (0.0, 0.0)}, {"a": (1.0, 1.0)}]
    np.testing.assert_array_equal(score_matrix(runs[:1], ["a", "b"], 0), [[0.5, 0.0]])
    with pytest.raises(ValueError, match="no rollouts"):
        score_matrix(runs, ["a", "b"], 1)


def test_seed_interval_hand_checked():
    # runs differ by +10, +5, +15 points: mean 10, sd 5, t(0.975, 2 df) = 4.3027 -> half-width 12.42
    d = seed_interval([0.10, 0.05, 0.15])
    assert (d.mean, d.sd, d.seeds) == (pytest.approx(0.10), pytest.approx(0.05), 3)
    assert d.lo == pytest.approx(0.10 - 4.302653 * 0.05 / 3 ** 0.5) and d.hi == pytest.approx(0.10 + 0.1242, abs=1e-4)
    assert d.points() == "+10.0 [-2.4, +22.4]"
    # power: (t(0.975, 2) + t(0.8, 2)) * sd / sqrt(3) = (4.3027 + 1.0607) * 0.05 / 1.7321
    assert d.detectable() == pytest.approx(0.15484, abs=1e-4)
    # 16 runs: (2.1314 + 0.8662) * 0.05 / 4 = 0.0375; 15 runs: (2.1448 + 0.8681) * 0.05 / 3.873 = 0.0389
    assert d.seeds_to_detect(0.038) == 16
    assert d.seeds_to_detect(0.0001, most=50) is None


def test_seed_interval_needs_two_runs():
    with pytest.raises(ValueError, match="2 or more paired runs, got 1"):
        seed_interval([0.1])
