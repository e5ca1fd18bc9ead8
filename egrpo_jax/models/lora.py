"""LoRA around the decoder: which variables are the frozen base, the base's fingerprint, and merging
the adapters into their weights (for export).

The adapters themselves live in models.decoder (Adapter, project); a model has them when its
config's lora_rank > 0, as nnx.LoRAParam variables beside the nnx.Param base weights.
"""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.decoder import ADAPTER_SUFFIX, Decoder
from egrpo_jax.models.sharding import abstract_model

# the base weights: every parameter that is not a LoRA adapter (nnx.LoRAParam subclasses nnx.Param)
BASE = nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))
_NO_LORA = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name.startswith("lora_")}


def has_adapters(model: nnx.Module) -> bool:
    return bool(jax.tree.leaves(nnx.state(model, nnx.LoRAParam)))


def base_sha256(model: nnx.Module) -> str:
    """SHA-256 over the base weights as the model holds them: path, dtype, shape and bytes of each, in
    tree order. One array on the host at a time; every process must call it (sharded arrays of other
    hosts are gathered)."""
    h = hashlib.sha256()
    for path, var in nnx.to_flat_state(nnx.state(model, BASE)):
        arr = var.get_value()
        if not arr.is_fully_addressable:
            arr = multihost_utils.process_allgather(arr, tiled=True)
        a = np.ascontiguousarray(np.asarray(arr))
        h.update(f"{'.'.join(map(str, path))}|{a.dtype}|{a.shape}|".encode())
        h.update(a.view(np.uint8))
    return h.hexdigest()


def merge_adapters(model: Decoder) -> Decoder:
    """A decoder without adapters whose weights are W + (alpha / r) * a @ b, in float32 (the
    adapters' update would round away in a bfloat16 base). Other weights are copied (as float32)."""
    cfg = model.cfg
    plain = cfg.replace(param_dtype="float32", **_NO_LORA)
    scale = cfg.lora_alpha / cfg.lora_rank
    adapters = dict(nnx.to_flat_state(nnx.state(model, nnx.LoRAParam)))
    leaves = []
    for path, var in nnx.to_flat_state(nnx.state(model, BASE)):
        w = var.get_value().astype(jnp.float32)
        a = adapters.pop((*path[:-1], f"{path[-1]}{ADAPTER_SUFFIX}", "a"), None)
        if a is not None:
            b = adapters.pop((*path[:-1], f"{path[-1]}{ADAPTER_SUFFIX}", "b"))
            ab = jnp.matmul(a.get_value().astype(jnp.float32), b.get_value().astype(jnp.float32),
                            precision=jax.lax.Precision.HIGHEST)
            w = w + scale * ab
        leaves.append((path, var.replace(w)))
    if adapters:  # every adapter sits beside the weight it adapts (models.decoder.add_adapters)
        raise ValueError(f"merge_adapters: adapter {'.'.join(map(str, next(iter(adapters))))} has no weight")
    return nnx.merge(nnx.graphdef(abstract_model(plain)), nnx.from_flat_state(leaves))
