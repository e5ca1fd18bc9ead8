"""KV cache: one K and one V array per layer, each [batch, kv_heads, max_len, head_dim].

Rows are independent: row b's tokens occupy cache slots 0..len_b-1 (contiguous), so attention
for a query at absolute position p reads slots j <= p. Writes at positions >= max_len are
dropped (never clamped onto valid slots).

Heads come before slots: attention then reads a layer's [batch, kv_heads, slots, head_dim] as
batched GEMM operands as they lie. With slots before heads XLA:CPU transposed every layer's K
and V at every decode step (a batch-64 step of the bench model: 21-22 -> 15-17 ms, bench/README.md).
One array per layer, not one stacked [layers, ...] array: attention reads a layer's array in
place, where the stacked layout made XLA copy the layer's slice out at every decode step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import Mesh, NamedSharding

from egrpo_jax.mesh import named_sharding
from egrpo_jax.models.config import ModelConfig

CACHE_AXES = ("batch", "cache_heads", "seq", "head_dim")


@struct.dataclass
class KVCache:
    k: tuple[jax.Array, ...]  # one per layer
    v: tuple[jax.Array, ...]

    @property
    def max_len(self) -> int:
        return self.k[0].shape[2]

    @property
    def batch(self) -> int:
        return self.k[0].shape[0]

    def map(self, fn) -> KVCache:
        """fn applied to every layer's K and V array."""
        return KVCache(k=tuple(fn(x) for x in self.k), v=tuple(fn(x) for x in self.v))


def cache_shape(cfg: ModelConfig, batch: int, max_len: int) -> tuple[int, ...]:
    """One layer's K (or V) array."""
    return (batch, cfg.num_kv_heads, max_len, cfg.head_dim)


def cache_sharding(cfg: ModelConfig, batch: int, max_len: int, mesh: Mesh) -> NamedSharding:
    return named_sharding(CACHE_AXES, cache_shape(cfg, batch, max_len), mesh)


def init_cache(
    cfg: ModelConfig, batch: int, max_len: int, dtype: str | None = None, mesh: Mesh | None = None
) -> KVCache:
    shape = cache_shape(cfg, batch, max_len)
    dt = jnp.dtype(dtype or cfg.dtype)
    if mesh is None:
        def zeros():
            return jnp.zeros(shape, dt)
    else:
        zeros = jax.jit(lambda: jnp.zeros(shape, dt), out_shardings=cache_sharding(cfg, batch, max_len, mesh))
    n = cfg.num_layers
    return KVCache(k=tuple(zeros() for _ in range(n)), v=tuple(zeros() for _ in range(n)))
