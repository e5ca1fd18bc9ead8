"""Per-token log-probs and entropies of given token ids under an NNX decoder.

The log-probs are those of the distribution the sampler draws from (temperature, top-k, top-p:
sampling.sampling.sampling_logits), so the learner's ratio to the sampler's log-probs is exactly 1
on-policy; temperature 1 with no filter is the plain model. logits at position t predict token t+1; the outputs are re-aligned to the tokens (entry t is
about token t given tokens < t; entry 0 is 0). The vocabulary projection runs over time chunks
under `jax.checkpoint`, so only one [B, chunk, V] logits block is alive at a time, in the
forward and in the backward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.sampling import sampling_logits

PLAIN = SamplingParams()  # temperature 1, no filter: the model's own distribution


def _chunk_stats(model, h: jax.Array, targets: jax.Array, sampling: SamplingParams) -> tuple[jax.Array, jax.Array]:
    logits = sampling_logits(model.logits(h), targets, sampling)  # [B, C, V], -inf off the support
    lse = jax.nn.logsumexp(logits, axis=-1)
    lp = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0] - lse
    # entropy is a metric only: no gradient path through it
    sl, slse = jax.lax.stop_gradient(logits), jax.lax.stop_gradient(lse)
    p = jnp.exp(sl - slse[..., None])
    ent = slse - jnp.sum(jnp.where(p > 0, p * sl, 0.0), axis=-1)
    return lp, ent


def token_logprobs(
    model, tokens: jax.Array, chunk: int = 0, start: jax.Array | None = None, window: int = 0,
    sampling: SamplingParams = PLAIN, positions: jax.Array | None = None, segments: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """tokens int32 [B, T] -> (logp [B, T], entropy [B, T]), float32, aligned to the tokens.

    Packed rows pass `positions` and `segments` (models.decoder.Decoder.hidden); the entry of a
    segment's first token is then a prediction from the previous segment: callers give it weight 0.

    With `window` > 0 and `start` [B], only tokens start_b .. start_b + window - 1 of each row get
    a log-prob (others 0): the vocabulary projection, the most expensive part for short models,
    then skips the prompt and everything outside the span of trained tokens.
    """
    b, t = tokens.shape
    h, _ = model.hidden(tokens, positions, segments=segments)
    targets = jnp.concatenate([tokens[:, 1:], jnp.zeros((b, 1), tokens.dtype)], axis=1)
    if window and start is not None and window < t:
        # predictions for tokens start..start+window-1 come from positions start-1..start+window-2
        pos = jnp.clip(start[:, None] - 1, 0, t - 1) + jnp.arange(window)[None, :]  # [B, W]
        pos_c = jnp.minimum(pos, t - 1)
        hw = jnp.take_along_axis(h, pos_c[..., None], axis=1)
        tw = jnp.take_along_axis(targets, pos_c, axis=1)
        lp, ent = _project(model, hw, tw, chunk, sampling)
        rows = jnp.arange(b)[:, None]
        out_lp = jnp.zeros((b, t), jnp.float32).at[rows, pos + 1].set(lp, mode="drop")
        out_ent = jnp.zeros((b, t), jnp.float32).at[rows, pos + 1].set(ent, mode="drop")
        return out_lp, out_ent
    lp, ent = _project(model, h, targets, chunk, sampling)
    zero = jnp.zeros((b, 1), jnp.float32)
    return jnp.concatenate([zero, lp[:, :-1]], axis=1), jnp.concatenate([zero, ent[:, :-1]], axis=1)


def _project(model, h: jax.Array, targets: jax.Array, chunk: int,
             sampling: SamplingParams) -> tuple[jax.Array, jax.Array]:
    b, t = targets.shape
    if chunk <= 0 or chunk >= t or t % chunk:
        return _chunk_stats(model, h, targets, sampling)
    n = t // chunk
    hs = h.reshape(b, n, chunk, h.shape[-1]).swapaxes(0, 1)
    ts = targets.reshape(b, n, chunk).swapaxes(0, 1)

    @jax.checkpoint
    def one(hc, tc):
        return _chunk_stats(model, hc, tc, sampling)

    lp, ent = jax.lax.map(lambda xs: one(*xs), (hs, ts))
    return lp.swapaxes(0, 1).reshape(b, t), ent.swapaxes(0, 1).reshape(b, t)


def trained_window(mask) -> tuple[np.ndarray, int]:
    """Host side: first trained token per row and the power-of-two window covering every row's span."""
    m = np.asarray(mask) > 0
    b, t = m.shape
    any_ = m.any(axis=1)
    first = np.where(any_, m.argmax(axis=1), 1)
    last = np.where(any_, t - 1 - m[:, ::-1].argmax(axis=1), 1)
    span = int((last - first + 1).max()) if any_.any() else 1
    window = 1 << (span - 1).bit_length()
    return first.astype(np.int32), min(window, t)
