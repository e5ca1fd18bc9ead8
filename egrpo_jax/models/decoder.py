"""One Flax NNX decoder for the dense Llama 3 / SmolLM2, Qwen2 / Qwen2.5 and Qwen3 family.

Differences between the families are config switches: tied embeddings and llama3 RoPE scaling
(Llama / SmolLM2), q/k/v biases (Qwen2), per-head q/k RMSNorm (Qwen3). Every parameter carries
logical axis names in its `axes` metadata (see egrpo_jax.mesh.LOGICAL_RULES).

LoRA (cfg.lora_rank > 0): each projection named in cfg.lora_targets gets an `Adapter` (nnx.LoRAParam
a, b) beside its weight, as attribute `<weight>_lora` of the same module; `project` adds its update
to the unchanged base product, so a decoder without adapters computes exactly what it did before.

Call convention
- `model(tokens)`: int32 [B, T] -> float32 logits [B, T, V], causal over the T tokens,
  positions 0..T-1 (or `positions` [B, T] for RoPE).
- `model(tokens, positions, cache=cache)`: writes the chunk's K/V into `cache` at each row's
  absolute `positions` and attends every query at position p to cache slots j <= p. Returns
  `(logits, new_cache)`. Positions >= cache length are dropped, so padding can be parked there.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.kv_cache import KVCache


def _param(rngs: nnx.Rngs, shape, axes, dtype, std: float = 0.02, init: str = "normal") -> nnx.Param:
    if init == "ones":
        value = jnp.ones(shape, dtype)
    elif init == "zeros":
        value = jnp.zeros(shape, dtype)
    else:
        value = (std * jax.random.normal(rngs.params(), shape)).astype(dtype)
    return nnx.Param(value, axes=tuple(axes))


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, dtype, *, rngs: nnx.Rngs):
        self.scale = _param(rngs, (dim,), ("norm",), dtype, init="ones")
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        var = jnp.mean(xf * xf, axis=-1, keepdims=True)
        y = xf * jax.lax.rsqrt(var + self.eps)
        return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)


def dense(x: jax.Array, w: jax.Array) -> jax.Array:
    """x [..., I] @ w [I, O] as one 2-D matmul: XLA:CPU runs the weight gradient of a matmul with
    batch dimensions (contracting over B and T at once) 3-4x slower than the flattened GEMM."""
    return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[-1])


# LoRA target (config.LORA_TARGETS) -> (the Block's sub-module, the weight it adapts)
LORA_WEIGHTS = {"q": ("attn", "wq"), "k": ("attn", "wk"), "v": ("attn", "wv"), "o": ("attn", "wo"),
                "gate": ("mlp", "w_gate"), "up": ("mlp", "w_up"), "down": ("mlp", "w_down")}
ADAPTER_SUFFIX = "_lora"  # the adapter of weight `wq` is the module's attribute `wq_lora`


class Adapter(nnx.Module):
    """LoRA of one projection W [in, out]: x -> (alpha / r) * (x @ a) @ b with a [in, r] ~ N(0, 1/in)
    and b [r, out] = 0, so a fresh adapter leaves the projection exactly as it was. a and b are
    nnx.LoRAParam (what the learner trains) with W's logical axes on their in / out side, so they
    shard like W; the rank axis is never sharded."""

    def __init__(self, w: nnx.Param, cfg: ModelConfig, *, rngs: nnx.Rngs):
        (din, dout), (ax_in, ax_out) = w.shape, w.get_metadata()["axes"]
        r, dtype = cfg.lora_rank, jnp.dtype(cfg.param_dtype)
        self.a = nnx.LoRAParam(adapter_a(rngs.params(), (din, r), dtype), axes=(ax_in, "lora_rank"))
        self.b = nnx.LoRAParam(jnp.zeros((r, dout), dtype), axes=("lora_rank", ax_out))
        self.scale = cfg.lora_alpha / r

    def __call__(self, x: jax.Array) -> jax.Array:
        dt = x.dtype
        return dense(dense(x, self.a[...].astype(dt)) * self.scale, self.b[...].astype(dt))


def adapter_a(key: jax.Array, shape: tuple[int, int], dtype) -> jax.Array:
    """A fresh adapter's a [in, r]: N(0, 1/in), so x @ a keeps the scale of x."""
    return (jax.random.normal(key, shape) / math.sqrt(shape[0])).astype(dtype)


def project(module: nnx.Module, name: str, x: jax.Array) -> jax.Array:
    """x @ module.<name>, plus the update of its LoRA adapter when it has one."""
    y = dense(x, getattr(module, name)[...].astype(x.dtype))
    adapter = getattr(module, name + ADAPTER_SUFFIX, None)
    return y if adapter is None else y + adapter(x)


def add_adapters(decoder: Decoder, rngs: nnx.Rngs) -> None:
    """An Adapter on every targeted projection of every layer."""
    cfg = decoder.cfg
    for block in decoder.layers:
        for target in cfg.lora_targets:
            sub, name = LORA_WEIGHTS[target]
            owner = getattr(block, sub)
            setattr(owner, name + ADAPTER_SUFFIX, Adapter(getattr(owner, name), cfg, rngs=rngs))


def rope_inv_freq(cfg: ModelConfig) -> jnp.ndarray:
    d = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
    sc = cfg.rope_scaling
    if sc and sc.get("rope_type", "default") == "llama3":
        factor = float(sc["factor"])
        low, high = float(sc["low_freq_factor"]), float(sc["high_freq_factor"])
        old = float(sc["original_max_position_embeddings"])
        low_wl, high_wl = old / low, old / high
        wavelen = 2 * math.pi / inv
        scaled = jnp.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        is_mid = (wavelen >= high_wl) & (wavelen <= low_wl)
        inv = jnp.where(is_mid, mid, scaled)
    return inv


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """HF "rotate half" RoPE. x: [B, T, H, D], positions: [B, T]."""
    ang = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, D/2]
    cos = jnp.cos(ang)[:, :, None, :]
    sin = jnp.sin(ang)[:, :, None, :]
    xf = x.astype(jnp.float32)
    x1, x2 = jnp.split(xf, 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def _cached_attention(q, keys, values, positions, kpos):
    """q [B, T, H, D] attends to cached keys [B, Hkv, D, S] and values [B, Hkv, S, D] at positions
    kpos <= its own.

    Only the (small) queries are transposed, heads first: the cache operands are read as they lie.
    """
    b, t, h, d = q.shape
    kv = keys.shape[1]
    qh = q.reshape(b, t, kv, h // kv, d).transpose(0, 2, 3, 1, 4)  # [B, Kv, G, T, D]
    scores = jnp.einsum("bkgtd,bkds->bkgts", qh, keys, preferred_element_type=jnp.float32) / math.sqrt(d)
    mask = kpos[:, None, :] <= positions[:, :, None]  # [B, T, S]
    scores = jnp.where(mask[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
    return jnp.einsum("bkgts,bksd->bkgtd", probs, values).transpose(0, 3, 1, 2, 4)


def attention_block(t: int) -> int:
    """Query block of causal_attention: 64 tokens, more for long sequences (fewer unrolled blocks)."""
    c = max(64, t // 16)
    return c if t > c and t % c == 0 else t


def causal_attention(q, k, v, positions, segments=None):
    """Causal self-attention of a whole sequence (no cache), in query blocks.

    Query block i attends only to keys 0 .. end of block i: the blocks above the diagonal are
    never computed (about half the score matrix for long sequences), and each block's scores fit
    in cache. Heads come first so every product is one batched GEMM. On a 2-core CPU this cut the
    attention gradient of a [16, 1024] batch 3.3-3.6x against the full masked [T, T] einsum.
    q [B, T, H, D], k/v [B, T, Hkv, D], positions [B, T] -> [B, T, Hkv, H/Hkv, D]. A key is
    visible if it is not after the query by index, its position is <= the query's (padding
    may repeat positions) and, given `segments` [B, T], it belongs to the query's segment (several
    sequences packed into one row, positions restarting at each).
    """
    b, t, h, d = q.shape
    kv = k.shape[2]
    g = h // kv
    qh = q.reshape(b, t, kv, g, d).transpose(0, 2, 3, 1, 4)  # [B, Kv, G, T, D]
    kh, vh = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, Kv, T, D]
    c = attention_block(t)
    outs = []
    for i in range(t // c):
        lo, hi = i * c, (i + 1) * c
        seg = None if segments is None else (segments[:, lo:hi], segments[:, :hi])
        outs.append(_query_block(qh[:, :, :, lo:hi], kh[:, :, :hi], vh[:, :, :hi],
                                 (positions[:, lo:hi], positions[:, :hi]), seg, lo))
    return jnp.concatenate(outs, axis=3).transpose(0, 3, 1, 2, 4)


@functools.partial(jax.checkpoint, static_argnums=(5,))
def _query_block(q, k, v, pos, seg, lo: int):
    """One query block's attention [B, Kv, G, C, D]. Under a gradient its scores and probabilities are
    recomputed in the backward pass instead of kept: they were most of a training step's activation
    memory (a [heads, C, hi] float32 block per query block and layer), while recomputing them costs
    a few percent of the step's FLOPs."""
    c, hi, d = q.shape[3], k.shape[2], q.shape[-1]
    # (b, kv) stay separate batch dimensions, so a mesh's data and tensor shardings carry through
    s = jnp.einsum("bkgcd,bksd->bkgcs", q, k, preferred_element_type=jnp.float32) / math.sqrt(d)
    mask = pos[1][:, None, :] <= pos[0][:, :, None]  # [B, C, hi]
    mask = mask & (jnp.arange(lo, lo + c)[:, None] >= jnp.arange(hi)[None, :])
    if seg is not None:
        mask = mask & (seg[1][:, None, :] == seg[0][:, :, None])
    s = jnp.where(mask[:, None, None], s, jnp.finfo(jnp.float32).min)
    p = jax.nn.softmax(s, axis=-1).astype(q.dtype)
    return jnp.einsum("bkgcs,bksd->bkgcd", p, v)


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        h, q, kv = cfg.hidden_size, cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
        pd = jnp.dtype(cfg.base_param_dtype)
        self.cfg = cfg
        self.wq = _param(rngs, (h, q), ("embed", "heads"), pd)
        self.wk = _param(rngs, (h, kv), ("embed", "kv_heads"), pd)
        self.wv = _param(rngs, (h, kv), ("embed", "kv_heads"), pd)
        self.wo = _param(rngs, (q, h), ("heads", "embed"), pd)
        if cfg.qkv_bias:
            self.bq = _param(rngs, (q,), ("heads",), pd, init="zeros")
            self.bk = _param(rngs, (kv,), ("kv_heads",), pd, init="zeros")
            self.bv = _param(rngs, (kv,), ("kv_heads",), pd, init="zeros")
        if cfg.qk_norm:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps, pd, rngs=rngs)
            self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps, pd, rngs=rngs)

    def __call__(self, x, positions, inv_freq, layer: int, cache: KVCache | None, segments=None):
        cfg = self.cfg
        dt = x.dtype
        b, t, _ = x.shape
        q = project(self, "wq", x)
        k = project(self, "wk", x)
        v = project(self, "wv", x)
        if cfg.qkv_bias:
            q = q + self.bq[...].astype(dt)
            k = k + self.bk[...].astype(dt)
            v = v + self.bv[...].astype(dt)
        q = q.reshape(b, t, cfg.num_heads, cfg.head_dim)
        k = k.reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        v = v.reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        if cfg.qk_norm:
            q = self.q_norm(q)
            k = self.k_norm(k)
        q = apply_rope(q, positions, inv_freq)
        k = apply_rope(k, positions, inv_freq)

        if cache is None:
            out = causal_attention(q, k, v, positions, segments)
        else:
            cache = cache.write(layer, positions, k, v)
            ck, cv = cache.k[layer], cache.v[layer]
            kpos = jnp.broadcast_to(jnp.arange(cache.max_len)[None, :], (b, cache.max_len))
            out = _cached_attention(q, ck.astype(dt), cv.astype(dt), positions, kpos)
        out = out.reshape(b, t, cfg.num_heads * cfg.head_dim)
        return project(self, "wo", out), cache


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        h, i = cfg.hidden_size, cfg.intermediate_size
        pd = jnp.dtype(cfg.base_param_dtype)
        self.w_gate = _param(rngs, (h, i), ("embed", "mlp"), pd)
        self.w_up = _param(rngs, (h, i), ("embed", "mlp"), pd)
        self.w_down = _param(rngs, (i, h), ("mlp", "embed"), pd)

    def __call__(self, x):
        g = project(self, "w_gate", x)
        u = project(self, "w_up", x)
        return project(self, "w_down", jax.nn.silu(g) * u)


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        pd = jnp.dtype(cfg.base_param_dtype)
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x, positions, inv_freq, layer: int, cache: KVCache | None, segments=None):
        a, cache = self.attn(self.attn_norm(x), positions, inv_freq, layer, cache, segments)
        x = x + a
        x = x + self.mlp(self.mlp_norm(x))
        return x, cache


class Decoder(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        pd = jnp.dtype(cfg.base_param_dtype)
        self.cfg = cfg
        self.embed = _param(rngs, (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"), pd)
        self.layers = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd, rngs=rngs)
        if not cfg.tie_embeddings:
            self.lm_head = _param(rngs, (cfg.hidden_size, cfg.vocab_size), ("embed", "vocab"), pd)
        if cfg.lora_rank:  # after every base weight: a base draws the same values with or without adapters
            add_adapters(self, rngs)

    def hidden(self, tokens, positions=None, *, cache: KVCache | None = None, segments=None):
        """Final-norm hidden states [B, T, H] (compute dtype) and the updated cache.

        `segments` int32 [B, T] (no cache): several sequences packed into a row attend only within
        their own segment; pass their restarting `positions` with them.
        """
        if segments is not None and (cache is not None or positions is None):
            raise ValueError("Decoder.hidden: segments need their positions and no cache")
        cfg = self.cfg
        b, t = tokens.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32)[None], (b, t))
        x = jnp.take(self.embed[...], tokens, axis=0).astype(jnp.dtype(cfg.dtype))
        inv_freq = rope_inv_freq(cfg)
        for i, block in enumerate(self.layers):
            if cfg.remat and cache is None:  # recomputation only pays off under a gradient (training)
                # jax.checkpoint of the block's state, not nnx.remat: with LoRA the frozen base and the
                # differentiated adapters come from different traces, and nnx.remat refuses such a module
                graphdef, state = nnx.split(block)

                def run(state, x, i=i):
                    return nnx.merge(graphdef, state)(x, positions, inv_freq, i, None, segments)[0]

                x = jax.checkpoint(run)(state, x)
            else:
                x, cache = block(x, positions, inv_freq, i, cache, segments)
        return self.norm(x), cache

    def logits(self, h: jax.Array) -> jax.Array:
        w = self.embed[...].T if self.cfg.tie_embeddings else self.lm_head[...]
        flat = jnp.matmul(h.reshape(-1, h.shape[-1]), w.astype(h.dtype), preferred_element_type=jnp.float32)
        return flat.reshape(*h.shape[:-1], w.shape[-1])

    def __call__(self, tokens, positions=None, *, cache: KVCache | None = None):
        h, new_cache = self.hidden(tokens, positions, cache=cache)
        logits = self.logits(h)
        if cache is None:
            return logits
        return logits, new_cache
