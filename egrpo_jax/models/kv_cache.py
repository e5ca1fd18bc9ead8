"""KV cache: one K and one V array per layer; K [batch, kv_heads, head_dim, max_len], V [batch,
kv_heads, max_len, head_dim].

Rows are independent: row b's tokens occupy cache slots 0..len_b-1 (contiguous), so attention
for a query at absolute position p reads slots j <= p. Writes at positions >= max_len are
dropped (never clamped onto valid slots).

The layouts are the ones attention's two products read as plain batched GEMM operands: scores
q [.., g, d] x K [.., d, slots] and outputs probs [.., g, slots] x V [.., slots, d]. On XLA:CPU
(YNNPACK) a K stored [.., slots, d], contracted on its minor axis, cost 5x a standard product (on a
batch-64 decode step's shapes 0.50 -> 0.10 ms per layer, bench/README.md); with slots before
heads XLA transposed every layer's K and V at every step. One array per layer, not one stacked
[layers, ...] array: a stacked layout made XLA copy each layer's slice out at every decode step.
Which axis holds the slots is known here only: callers window, gather and scatter through the
methods below.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import Mesh

from egrpo_jax.mesh import named_sharding
from egrpo_jax.models.config import ModelConfig

K_AXES = ("batch", "cache_heads", "head_dim", "seq")
V_AXES = ("batch", "cache_heads", "seq", "head_dim")


@struct.dataclass
class KVCache:
    k: tuple[jax.Array, ...]  # one per layer, [batch, kv_heads, head_dim, slots]
    v: tuple[jax.Array, ...]  # one per layer, [batch, kv_heads, slots, head_dim]

    @property
    def max_len(self) -> int:
        return self.v[0].shape[2]

    @property
    def batch(self) -> int:
        return self.v[0].shape[0]

    def _each(self, fk, fv) -> KVCache:
        return KVCache(k=tuple(fk(x) for x in self.k), v=tuple(fv(x) for x in self.v))

    def window(self, n: int) -> KVCache:
        """Every row's first n slots."""
        if n == self.max_len:
            return self
        return self._each(lambda x: x[..., :n], lambda x: x[:, :, :n])

    def take_rows(self, rows: jax.Array, n: int) -> KVCache:
        """The given rows' first n slots (a compacted batch)."""
        return self._each(lambda x: x[rows, :, :, :n], lambda x: x[rows, :, :n])

    def put_rows(self, rows: jax.Array, small: KVCache) -> KVCache:
        """This cache with `small` (from take_rows) written back into its rows' first slots."""
        n = small.max_len
        return KVCache(k=tuple(f.at[rows, :, :, :n].set(x) for f, x in zip(self.k, small.k)),
                       v=tuple(f.at[rows, :, :n].set(x) for f, x in zip(self.v, small.v)))

    def put_window(self, small: KVCache) -> KVCache:
        """This cache with `small` (from window) written back into every row's first slots."""
        if small.max_len == self.max_len:
            return small
        zero = (0,) * self.v[0].ndim
        return KVCache(k=tuple(jax.lax.dynamic_update_slice(f, x, zero) for f, x in zip(self.k, small.k)),
                       v=tuple(jax.lax.dynamic_update_slice(f, x, zero) for f, x in zip(self.v, small.v)))

    def write(self, layer: int, positions: jax.Array, k: jax.Array, v: jax.Array) -> KVCache:
        """Layer `layer` with k, v [B, T, kv_heads, head_dim] at slots positions [B, T] of each row
        (positions >= max_len are dropped); in place inside a decode loop."""
        rows = jnp.arange(k.shape[0])[:, None]
        # advanced indices separated by slices: the update's leading axes are theirs, [B, T, ...]
        ck = self.k[layer].at[rows, :, :, positions].set(k.astype(self.k[layer].dtype), mode="drop")
        cv = self.v[layer].at[rows, :, positions].set(v.astype(self.v[layer].dtype), mode="drop")
        return KVCache(k=self.k[:layer] + (ck,) + self.k[layer + 1:], v=self.v[:layer] + (cv,) + self.v[layer + 1:])


def cache_shapes(cfg: ModelConfig, batch: int, max_len: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """One layer's K and V array."""
    return (batch, cfg.num_kv_heads, cfg.head_dim, max_len), (batch, cfg.num_kv_heads, max_len, cfg.head_dim)


def cache_shardings(cfg: ModelConfig, batch: int, max_len: int, mesh: Mesh) -> KVCache:
    """A KVCache of NamedShardings: rows over data x fsdp, KV heads over tensor."""
    ks, vs = cache_shapes(cfg, batch, max_len)
    n = cfg.num_layers
    return KVCache(k=(named_sharding(K_AXES, ks, mesh),) * n, v=(named_sharding(V_AXES, vs, mesh),) * n)


def init_cache(
    cfg: ModelConfig, batch: int, max_len: int, dtype: str | None = None, mesh: Mesh | None = None,
    *, abstract: bool = False,
) -> KVCache:
    """A zero cache; `abstract` (needs `mesh`): jax.ShapeDtypeStructs with the same shardings, nothing
    allocated (for compiling ahead of time: rl.memory_plan)."""
    dt = jnp.dtype(dtype or cfg.dtype)
    n = cfg.num_layers
    ks, vs = cache_shapes(cfg, batch, max_len)
    if abstract and mesh is None:
        raise ValueError("init_cache: an abstract cache needs a mesh (its shardings)")
    if mesh is None:
        return KVCache(k=tuple(jnp.zeros(ks, dt) for _ in range(n)), v=tuple(jnp.zeros(vs, dt) for _ in range(n)))
    sh = cache_shardings(cfg, batch, max_len, mesh)
    if abstract:
        return KVCache(k=tuple(jax.ShapeDtypeStruct(ks, dt, sharding=s) for s in sh.k),
                       v=tuple(jax.ShapeDtypeStruct(vs, dt, sharding=s) for s in sh.v))
    zk = jax.jit(lambda: jnp.zeros(ks, dt), out_shardings=sh.k[0])
    zv = jax.jit(lambda: jnp.zeros(vs, dt), out_shardings=sh.v[0])
    return KVCache(k=tuple(zk() for _ in range(n)), v=tuple(zv() for _ in range(n)))
