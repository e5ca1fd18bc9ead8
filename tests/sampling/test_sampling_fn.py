"""The pure sampling functions: support filters on hand-made logits, keys, log-probs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.sampling import filter_logits, row_keys, sample

PROBS = np.array([0.05, 0.5, 0.15, 0.3], np.float32)  # sorted: idx 1, 3, 2, 0
LOGITS = jnp.log(jnp.asarray(PROBS))[None]


def support(x):
    return set(np.flatnonzero(np.isfinite(np.asarray(x)[0])).tolist())


@pytest.mark.parametrize(
    "top_k, top_p, expected",
    [
        (0, 1.0, {0, 1, 2, 3}),
        (1, 1.0, {1}),
        (2, 1.0, {1, 3}),
        (3, 1.0, {1, 2, 3}),
        (4, 1.0, {0, 1, 2, 3}),
        (0, 0.5, {1}),  # mass before token 3 is 0.5, not < 0.5
        (0, 0.6, {1, 3}),
        (0, 0.81, {1, 2, 3}),
        (0, 0.96, {0, 1, 2, 3}),
        (0, 0.01, {1}),  # the most likely token is always kept
        (2, 0.6, {1}),  # after top-2 renormalisation token 1 has 0.625
        (2, 0.7, {1, 3}),
        (3, 0.81, {1, 3}),  # top-3 renormalised: 0.526, 0.316, 0.158
    ],
)
def test_filter_support(top_k, top_p, expected):
    out = filter_logits(LOGITS, top_k=top_k, top_p=top_p)
    assert support(out) == expected
    kept = sorted(expected)
    np.testing.assert_allclose(np.asarray(out)[0, kept], np.asarray(LOGITS)[0, kept])


def test_filter_batched_rows_independent():
    logits = jnp.asarray([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    out = np.asarray(filter_logits(logits, top_k=2))
    assert np.isfinite(out).tolist() == [[True, True, False, False], [False, False, True, True]]


def test_sample_respects_support_and_reports_logprobs():
    n = 4000
    logits = jnp.broadcast_to(LOGITS, (n, 4))
    keys = row_keys(jnp.int32(7), jnp.arange(n), jnp.zeros(n, jnp.int32))
    params = SamplingParams(temperature=1.0, top_k=2)
    tok, lp, raw = sample(logits, keys, params)
    tok = np.asarray(tok)
    assert set(tok.tolist()) == {1, 3}
    # frequencies follow the renormalised top-2 distribution (0.625 / 0.375), 5 sigma
    assert abs((tok == 1).mean() - 0.625) < 5 * np.sqrt(0.625 * 0.375 / n)
    want_lp = np.where(tok == 1, np.log(0.625), np.log(0.375))
    np.testing.assert_allclose(np.asarray(lp), want_lp, atol=1e-6)
    np.testing.assert_allclose(np.asarray(raw), np.log(PROBS[tok]), atol=1e-6)


def test_temperature_scales_sampling_logprob_only():
    keys = row_keys(jnp.int32(0), jnp.arange(1), jnp.zeros(1, jnp.int32))
    tok, lp, raw = sample(LOGITS, keys, SamplingParams(temperature=0.5))
    p = PROBS**2 / (PROBS**2).sum()
    t = int(tok[0])
    assert float(lp[0]) == pytest.approx(np.log(p[t]), abs=1e-6)
    assert float(raw[0]) == pytest.approx(np.log(PROBS[t]), abs=1e-6)


def test_greedy_is_argmax_with_zero_sampling_logprob():
    keys = row_keys(jnp.int32(0), jnp.arange(1), jnp.zeros(1, jnp.int32))
    tok, lp, raw = sample(LOGITS, keys, SamplingParams(temperature=0.0))
    assert int(tok[0]) == 1 and float(lp[0]) == 0.0
    assert float(raw[0]) == pytest.approx(np.log(0.5), abs=1e-6)


def test_row_keys_depend_on_seed_row_and_position_only():
    a = jax.random.key_data(row_keys(jnp.int32(3), jnp.asarray([0, 1, 0]), jnp.asarray([5, 5, 6])))
    b = jax.random.key_data(row_keys(jnp.int32(3), jnp.asarray([0]), jnp.asarray([5])))
    c = jax.random.key_data(row_keys(jnp.int32(4), jnp.asarray([0]), jnp.asarray([5])))
    a = np.asarray(a)
    assert (a[0] == np.asarray(b)[0]).all()
    assert not (a[0] == a[1]).all() and not (a[0] == a[2]).all()
    assert not (a[0] == np.asarray(c)[0]).all()
