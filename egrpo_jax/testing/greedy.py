"""Simple cached greedy decoding for one prompt: the reference for parity tests.

Deliberately plain (one jitted prefill, one jitted single-token step, a host loop); the batched,
stop-tag-aware engine lives in egrpo_jax.sampling.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from egrpo_jax.models.decoder import Decoder
from egrpo_jax.models.kv_cache import KVCache, init_cache


@functools.partial(jax.jit, static_argnums=0, donate_argnums=4)
def _step(graphdef, state, tokens: jax.Array, positions: jax.Array, cache: KVCache):
    logits, cache = nnx.merge(graphdef, state)(tokens, positions, cache=cache)
    return logits[:, -1], cache


def greedy_generate(model: Decoder, prompt_ids: Sequence[int], max_new_tokens: int, *,
                    stop_ids: Sequence[int] = (), return_logits: bool = False):
    """Greedy continuation of `prompt_ids` (stops after emitting a token in `stop_ids`, which is kept).

    Returns the new token ids, or with `return_logits` also the float32 logits [steps, vocab] computed
    at every fed position (row p predicts the token after position p).

    The prompt is fed one token at a time through the same single-token program as decoding: one
    compilation in all, which on CPU costs more than the extra steps.
    """
    if not prompt_ids:
        raise ValueError("greedy_generate: prompt_ids is empty")
    if max_new_tokens < 1:
        raise ValueError(f"greedy_generate: max_new_tokens must be >= 1, got {max_new_tokens}")
    n = len(prompt_ids)
    # cache length rounded up to a power of two so repeated calls reuse the compilation
    max_len = 1 << (n + max_new_tokens - 1).bit_length()
    cache = init_cache(model.cfg, 1, max_len)
    graphdef, state = nnx.split(model)
    stops = {int(s) for s in stop_ids}
    out: list[int] = []
    rows = []
    for pos in range(n + max_new_tokens - 1):
        cur = prompt_ids[pos] if pos < n else out[-1]
        logits, cache = _step(graphdef, state, jnp.full((1, 1), cur, jnp.int32), jnp.full((1, 1), pos, jnp.int32),
                              cache)
        row = np.asarray(logits[0])
        if return_logits:
            rows.append(row)
        if pos >= n - 1:
            out.append(int(row.argmax()))
            if out[-1] in stops:
                break
    return (out, np.stack(rows)) if return_logits else out
