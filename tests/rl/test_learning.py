"""GRPO learns: on a small deterministic agent task, 20 steps raise training reward from <= 0.3 to
>= 0.6, for two seeds and for E-GRPO (alpha = 0.3). See learning_task.py for the task.

Behaviour, not timing. Hand-run mutations (closing note of the RL issue): flipping the advantage
sign or shifting the loss mask by one token makes these tests fail."""

import numpy as np
import pytest

from learning_run import run_learning


@pytest.mark.parametrize("seed,alpha", [(0, 0.0), (1, 0.0), (0, 0.3)], ids=["grpo-seed0", "grpo-seed1", "egrpo-0.3"])
def test_grpo_raises_training_reward(tmp_path, seed, alpha):
    rows, info = run_learning(tmp_path, seed=seed, alpha=alpha)
    assert len(rows) == 20
    assert info["sft_loss"][-1] < info["sft_loss"][0]
    reward = np.array([r["reward/mean"] for r in rows])
    accuracy = np.array([r["accuracy"] for r in rows])
    assert reward[0] <= 0.3, reward  # the SFT start searches at random
    assert reward[-3:].mean() >= 0.6, reward
    assert accuracy[-3:].mean() >= 0.6, accuracy  # E-GRPO's partial credit is not what rose
    assert max(r["kl_sampler"] for r in rows if r.get("trained_tokens")) < 1e-4  # on-policy throughout


def test_one_step_off_policy_grpo_raises_training_reward(tmp_path):
    """rl.off_policy_steps = 1: every step after the first trains on rollouts drawn by the policy
    before the previous update (staleness 1, importance ratio off 1), and it still learns."""
    rows, _ = run_learning(tmp_path, seed=0, alpha=0.0, overrides=("rl.off_policy_steps=1", "rl.is_cap=2.0"))
    assert len(rows) == 20
    assert [r["offpolicy/staleness"] for r in rows] == [0.0] + [1.0] * 19
    reward = np.array([r["reward/mean"] for r in rows])
    assert reward[0] <= 0.3, reward
    assert reward[-3:].mean() >= 0.6, reward
    trained = [r for r in rows[1:] if r.get("trained_tokens")]
    assert trained and max(r["kl_sampler"] for r in trained) > 1e-4  # the sampler really was an older policy
    assert rows[0]["kl_sampler"] < 1e-4  # the first step's rollouts are on-policy
