"""Blocked causal attention (models.decoder.causal_attention) against the full masked [T, T] form."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egrpo_jax.models.decoder import attention_block, causal_attention


def full_attention(q, k, v, positions):
    b, t, h, d = q.shape
    kv = k.shape[2]
    kr = jnp.repeat(k, h // kv, axis=2)
    vr = jnp.repeat(v, h // kv, axis=2)
    s = jnp.einsum("bthd,bshd->bhts", q, kr) / math.sqrt(d)
    idx = jnp.arange(t)
    mask = (positions[:, None, :] <= positions[:, :, None]) & (idx[None, None, :] <= idx[None, :, None])
    s = jnp.where(mask[:, None], s, -jnp.inf)
    out = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), vr)
    return out.reshape(b, t, kv, h // kv, d)


@pytest.mark.parametrize("t", [100, 256])
def test_blocked_equals_full_values_and_gradients(t):
    r = np.random.default_rng(0)
    b, h, kv, d = 2, 4, 2, 8
    q, k, v = (jnp.asarray(r.standard_normal((b, t, n, d)), jnp.float32) for n in (h, kv, kv))
    # row 1 is right-padded: its last 40 positions repeat the final real position
    pos = np.tile(np.arange(t, dtype=np.int32), (b, 1))
    pos[1, t - 40:] = t - 41
    pos = jnp.asarray(pos)
    assert attention_block(t) == (64 if t == 256 else t)  # 256: four query blocks; 100: one
    ours, ref = causal_attention(q, k, v, pos), full_attention(q, k, v, pos)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=2e-6)
    w = jnp.asarray(r.standard_normal(ref.shape), jnp.float32)
    g_ours = jax.grad(lambda *a: jnp.sum(w * causal_attention(*a, pos)), argnums=(0, 1, 2))(q, k, v)
    g_ref = jax.grad(lambda *a: jnp.sum(w * full_attention(*a, pos)), argnums=(0, 1, 2))(q, k, v)
    for a, c in zip(g_ours, g_ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=2e-5)
