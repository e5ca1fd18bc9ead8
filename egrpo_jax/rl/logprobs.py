"""Per-token log-probs and entropies of given token ids under an NNX decoder.

logits at position t predict token t+1; the outputs are re-aligned to the tokens (entry t is
about token t given tokens < t; entry 0 is 0). The vocabulary projection runs over time chunks
under `jax.checkpoint`, so only one [B, chunk, V] logits block is alive at a time, in the
forward and in the backward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _chunk_stats(model, h: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model.logits(h).astype(jnp.float32)  # [B, C, V]
    lsm = jax.nn.log_softmax(logits, axis=-1)
    lp = jnp.take_along_axis(lsm, targets[..., None], axis=-1)[..., 0]
    ent = -jnp.sum(jnp.exp(lsm) * lsm, axis=-1)
    return lp, ent


def token_logprobs(model, tokens: jax.Array, chunk: int = 0) -> tuple[jax.Array, jax.Array]:
    """tokens int32 [B, T] -> (logp [B, T], entropy [B, T]), float32, aligned to the tokens."""
    b, t = tokens.shape
    h, _ = model.hidden(tokens)
    targets = jnp.concatenate([tokens[:, 1:], jnp.zeros((b, 1), tokens.dtype)], axis=1)
    if chunk <= 0 or chunk >= t or t % chunk:
        lp, ent = _chunk_stats(model, h, targets)
    else:
        n = t // chunk
        hs = h.reshape(b, n, chunk, h.shape[-1]).swapaxes(0, 1)
        ts = targets.reshape(b, n, chunk).swapaxes(0, 1)

        @jax.checkpoint
        def one(hc, tc):
            return _chunk_stats(model, hc, tc)

        lp, ent = jax.lax.map(lambda xs: one(*xs), (hs, ts))
        lp = lp.swapaxes(0, 1).reshape(b, t)
        ent = ent.swapaxes(0, 1).reshape(b, t)
    zero = jnp.zeros((b, 1), jnp.float32)
    return jnp.concatenate([zero, lp[:, :-1]], axis=1), jnp.concatenate([zero, ent[:, :-1]], axis=1)
