"""Token sampling: support filters (top-k, top-p), per-row seeded keys, log-probs.

Everything here is a pure function of float32 logits [B, V]; the engine calls it inside its
jitted decode loop. Randomness never depends on device layout: each row's key is the run's seed
folded with the row's index and the absolute position of the token being sampled, so the same
seed gives the same tokens on any mesh and after any mix of extend / decode calls.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from egrpo_jax.sampling.api import SamplingParams


def filter_logits(logits: jax.Array, *, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Set logits outside the top-k and nucleus (top-p) support to -inf.

    top_k = 0 and top_p = 1 leave the logits unchanged. Top-p keeps the smallest set of the most
    likely tokens whose probability (after top-k) reaches top_p; the most likely token is always
    kept. Tokens tied with the last kept value are kept too (the support is a threshold).
    """
    vocab = logits.shape[-1]
    neg = jnp.asarray(-jnp.inf, logits.dtype)
    # Descending values that top-p needs; top-k narrows them first so we sort k, not V.
    if 0 < top_k < vocab:
        top_vals = jax.lax.top_k(logits, top_k)[0]  # [..., k] descending
        logits = jnp.where(logits >= top_vals[..., -1:], logits, neg)
    elif top_p < 1.0:
        top_vals = -jnp.sort(-logits, axis=-1)
    if top_p < 1.0:
        probs = jax.nn.softmax(top_vals, axis=-1)
        mass_before = jnp.cumsum(probs, axis=-1) - probs
        n_keep = jnp.sum(mass_before < top_p, axis=-1, keepdims=True)  # >= 1
        thresh = jnp.take_along_axis(top_vals, n_keep - 1, axis=-1)
        logits = jnp.where(logits >= thresh, logits, neg)
    return logits


def row_keys(seed: jax.Array, rows: jax.Array, positions: jax.Array) -> jax.Array:
    """One PRNG key per row from (seed, stream id, absolute token position): a rollout's random
    stream follows its stream id into whichever engine row it occupies."""
    base = jax.random.key(seed)
    return jax.vmap(lambda r, p: jax.random.fold_in(jax.random.fold_in(base, r), p))(rows, positions)


def sample(
    logits: jax.Array, keys: jax.Array, params: SamplingParams
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Sample one token per row. logits float32 [B, V], keys [B].

    Returns (tokens int32 [B], logprob under the distribution sampled from [B],
    raw model log-prob at temperature 1 [B]). Greedy (temperature 0) samples from a point mass,
    so its sampling log-prob is 0.
    """
    logits = logits.astype(jnp.float32)
    top = jnp.max(logits, axis=-1, keepdims=True)
    lse = top + jnp.log(jnp.sum(jnp.exp(logits - top), axis=-1, keepdims=True))
    if params.temperature == 0.0:
        # First index of the max: two plain reductions, much cheaper on CPU than argmax's
        # variadic (value, index) reduce; same tie-breaking.
        iota = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
        tokens = jnp.min(jnp.where(logits == top, iota, logits.shape[-1]), axis=-1)
        lp = jnp.zeros(tokens.shape, jnp.float32)
        return tokens, lp, (top - lse)[:, 0]
    scaled = filter_logits(logits / params.temperature, top_k=params.top_k, top_p=params.top_p)
    tokens = jax.vmap(jax.random.categorical)(keys, scaled).astype(jnp.int32)
    lp = jnp.take_along_axis(jax.nn.log_softmax(scaled, axis=-1), tokens[:, None], axis=-1)[:, 0]
    raw_lp = jnp.take_along_axis(logits, tokens[:, None], axis=-1)[:, 0] - lse[:, 0]
    return tokens, lp, raw_lp


def sampling_logits(logits: jax.Array, targets: jax.Array, params: SamplingParams) -> jax.Array:
    """The logits of the distribution `sample` draws from (temperature, top-k, top-p), for scoring
    given target tokens [...]: the learner's log-softmax of these equals the sampler's log-prob.

    The target token is always kept in the support: the learner's forward pass differs from the
    cached decode by float rounding, which could move a token sitting exactly at the nucleus
    threshold out of it and turn its log-prob into -inf (the sampler drew it, so it was inside).
    Gradients flow through the kept logits; the support itself is a discrete choice.
    """
    if params.temperature <= 0.0:
        raise ValueError("sampling_logits: greedy sampling (temperature 0) has no log-probs to train on")
    scaled = logits.astype(jnp.float32) / params.temperature
    if params.top_k == 0 and params.top_p >= 1.0:
        return scaled
    kept = filter_logits(jax.lax.stop_gradient(scaled), top_k=params.top_k, top_p=params.top_p) > -jnp.inf
    is_target = jax.nn.one_hot(targets, scaled.shape[-1], dtype=jnp.bool_)
    return jnp.where(kept | is_target, scaled, -jnp.inf)
