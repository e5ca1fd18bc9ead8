"""pack_trajectories: exact ids and the sampler's log-probs, and no fallback when they do not line up."""

import numpy as np
import pytest

from egrpo_jax.agent.trajectory import ANSWERED, Trajectory
from egrpo_jax.rl.batch import pack_sequences, pack_trajectories


def _traj(lps):
    return Trajectory("q1", [5, 6, 7, 8], [0, 0, 1, 1], lps, 2, [], [], "a", ANSWERED,
                      raw_logprobs=[0.0, 0.0, -9.0, -9.0])


def test_packs_the_sampler_log_probs_on_the_mask():
    # the sampling distribution's log-probs (what the learner recomputes), not the temperature-1 ones
    b = pack_trajectories([_traj([0.0, 0.0, -1.0, -2.0])], [0.5])
    assert b.tokens[0, :4].tolist() == [5, 6, 7, 8] and b.mask[0, :4].tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(b.old_logp[0, :4], [0, 0, -1.0, -2.0])


@pytest.mark.parametrize("lps", [[], [0.0, -1.0, -2.0]])
def test_log_probs_of_another_length_are_an_error_not_a_fallback(lps):
    with pytest.raises(ValueError, match="logprobs"):
        _traj(lps)


def test_pack_trajectories_rows_stop_at_the_agent_token_cap():
    """Rollouts under a 768-token cap pad to 768 (not 1024); without a cap, the next power of two."""
    long = Trajectory("q", [5] * 700, [0] + [1] * 699, [0.0] + [-1.0] * 699, 1, [], [], "a", ANSWERED)
    assert pack_trajectories([long], [1.0]).tokens.shape == (1, 1024)
    b = pack_trajectories([long], [1.0], max_len=768)
    assert b.tokens.shape == (1, 768) and b.tokens[0, :700].tolist() == [5] * 700
    assert pack_trajectories([long], [1.0], max_len=600).tokens.shape == (1, 700)  # never cuts a rollout


def test_pack_sequences_row_length_stops_at_max_len():
    """Demos cut at 768 tokens pad to 768, not to the next power of two (1024)."""
    seqs = [[1] * 700, [2] * 300]
    masks = [[0] + [1] * 699, [0] + [1] * 299]
    assert pack_sequences(seqs, masks, max_len=768).tokens.shape == (2, 768)
    assert pack_sequences(seqs, masks, max_len=700).tokens.shape == (2, 704)  # max_len rounded up to 64
    assert pack_sequences(seqs, masks).tokens.shape == (2, 1024)  # no limit: a power of two
    packed = pack_sequences(seqs, masks, max_len=1000, pack=True)
    assert packed.tokens.shape == (2, 1024) and packed.segments[0].max() == 2  # both in row 0, row 1 empty


def test_packing_never_takes_more_rows_than_one_per_row():
    """A large row multiple (micro-batches x data devices) must not multiply the packed rows."""
    seqs = [[1] * 300, [2] * 200]
    masks = [[0] + [1] * 299, [0] + [1] * 199]
    flat = pack_sequences(seqs, masks, row_multiple=16, max_len=1024)
    packed = pack_sequences(seqs, masks, row_multiple=16, max_len=1024, pack=True)
    assert flat.tokens.shape == packed.tokens.shape == (16, 512)
    assert pack_sequences(seqs, masks, max_len=1024, pack=True).tokens.shape == (2, 512)  # 1 row used, not 4
