"""KV cache: one stacked array per K and V, [layers, batch, kv_heads, max_len, head_dim].

Rows are independent: row b's tokens occupy cache slots 0..len_b-1 (contiguous), so attention
for a query at absolute position p reads slots j <= p. Writes at positions >= max_len are
dropped (never clamped onto valid slots).

Heads come before slots: attention then reads a layer's [batch, kv_heads, slots, head_dim] as
batched GEMM operands as they lie. With slots before heads XLA:CPU transposed every layer's K
and V at every decode step (a batch-64 step of the bench model: 21-22 -> 15-17 ms, bench/README.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import Mesh, NamedSharding

from egrpo_jax.mesh import named_sharding
from egrpo_jax.models.config import ModelConfig

CACHE_AXES = ("layers", "batch", "cache_heads", "seq", "head_dim")


@struct.dataclass
class KVCache:
    k: jax.Array
    v: jax.Array

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    @property
    def batch(self) -> int:
        return self.k.shape[1]


def cache_shape(cfg: ModelConfig, batch: int, max_len: int) -> tuple[int, ...]:
    return (cfg.num_layers, batch, cfg.num_kv_heads, max_len, cfg.head_dim)


def cache_sharding(cfg: ModelConfig, batch: int, max_len: int, mesh: Mesh) -> NamedSharding:
    return named_sharding(CACHE_AXES, cache_shape(cfg, batch, max_len), mesh)


def init_cache(
    cfg: ModelConfig, batch: int, max_len: int, dtype: str | None = None, mesh: Mesh | None = None
) -> KVCache:
    shape = cache_shape(cfg, batch, max_len)
    dt = jnp.dtype(dtype or cfg.dtype)
    if mesh is None:
        return KVCache(k=jnp.zeros(shape, dt), v=jnp.zeros(shape, dt))
    sh = cache_sharding(cfg, batch, max_len, mesh)
    zeros = jax.jit(lambda: jnp.zeros(shape, dt), out_shardings=sh)
    return KVCache(k=zeros(), v=zeros())
