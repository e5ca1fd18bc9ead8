"""Hugging Face checkpoint folders <-> our decoder: config.json mapping, parameter names, I/O.

Our parameters are stored [in, out] (x @ W); HF nn.Linear weights are [out, in], so every 2-D
projection is transposed on the way in and out. The token embedding is [vocab, hidden] in both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.safetensors_io import SafetensorsFile, save_file

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

# our per-layer sub-path -> HF name suffix (after "model.layers.{i}.")
_LAYER_NAMES: dict[tuple, str] = {
    ("attn_norm", "scale"): "input_layernorm.weight",
    ("mlp_norm", "scale"): "post_attention_layernorm.weight",
    ("attn", "wq"): "self_attn.q_proj.weight",
    ("attn", "wk"): "self_attn.k_proj.weight",
    ("attn", "wv"): "self_attn.v_proj.weight",
    ("attn", "wo"): "self_attn.o_proj.weight",
    ("attn", "bq"): "self_attn.q_proj.bias",
    ("attn", "bk"): "self_attn.k_proj.bias",
    ("attn", "bv"): "self_attn.v_proj.bias",
    ("attn", "q_norm", "scale"): "self_attn.q_norm.weight",
    ("attn", "k_norm", "scale"): "self_attn.k_norm.weight",
    ("mlp", "w_gate"): "mlp.gate_proj.weight",
    ("mlp", "w_up"): "mlp.up_proj.weight",
    ("mlp", "w_down"): "mlp.down_proj.weight",
}
_TOP_NAMES: dict[tuple, str] = {
    ("embed",): "model.embed_tokens.weight",
    ("norm", "scale"): "model.norm.weight",
    ("lm_head",): "lm_head.weight",
}


def hf_param_name(path: tuple) -> tuple[str, bool]:
    """(HF tensor name, transpose?) for an nnx state path such as ("layers", 3, "attn", "wq")."""
    path = tuple(path)
    if path in _TOP_NAMES:
        return _TOP_NAMES[path], path == ("lm_head",)
    if len(path) >= 3 and path[0] == "layers" and tuple(path[2:]) in _LAYER_NAMES:
        suffix = _LAYER_NAMES[tuple(path[2:])]
        return f"model.layers.{path[1]}.{suffix}", suffix.endswith("proj.weight")
    raise KeyError(f"no HF name for parameter {'.'.join(map(str, path))}")


# --------------------------------------------------------------------------- config.json


def _rope_from_hf(d: dict, source: str) -> tuple[float, dict | None]:
    """rope_theta and llama3 scaling from transformers-5 `rope_parameters` or the older keys."""
    params = d.get("rope_parameters")
    if params is None:
        params = dict(d.get("rope_scaling") or {})
        params.setdefault("rope_theta", d.get("rope_theta", 10000.0))
    params = dict(params)
    rtype = params.get("rope_type", params.get("type", "default")) or "default"
    theta = float(params.get("rope_theta", d.get("rope_theta", 10000.0)))
    if rtype == "default":
        return theta, None
    if rtype == "llama3":
        keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        missing = [k for k in keys if k not in params]
        if missing:
            raise ValueError(f"{source}: rope_parameters (llama3) lacks {missing}")
        return theta, {"rope_type": "llama3", **{k: params[k] for k in keys}}
    raise ValueError(f"{source}: key rope_parameters.rope_type = {rtype!r} is not supported (allowed: default, llama3)")


def config_from_hf(d: dict[str, Any], *, source: str = "config.json", dtype: str = "float32") -> ModelConfig:
    """Map an HF config.json dict (llama / qwen2 / qwen3) to a ModelConfig."""
    family = d.get("model_type")
    if family not in ARCHITECTURES:
        raise ValueError(f"{source}: key model_type = {family!r} is not supported (allowed: {sorted(ARCHITECTURES)})")
    act = d.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"{source}: key hidden_act = {act!r} is not supported (allowed: silu)")
    if family in ("llama", "qwen3") and d.get("attention_bias"):
        raise ValueError(f"{source}: key attention_bias = true is not supported for {family} (o_proj bias)")
    if d.get("mlp_bias"):
        raise ValueError(f"{source}: key mlp_bias = true is not supported")
    if d.get("use_sliding_window"):
        raise ValueError(f"{source}: key use_sliding_window = true is not supported")
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
        if key not in d:
            raise ValueError(f"{source}: missing key {key}")
    heads = int(d["num_attention_heads"])
    theta, scaling = _rope_from_hf(d, source)
    return ModelConfig(
        family=family,
        vocab_size=int(d["vocab_size"]),
        hidden_size=int(d["hidden_size"]),
        intermediate_size=int(d["intermediate_size"]),
        num_layers=int(d["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(d.get("num_key_value_heads") or heads),
        head_dim=int(d.get("head_dim") or d["hidden_size"] // heads),
        rope_theta=theta,
        rope_scaling=scaling,
        rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(d.get("tie_word_embeddings", False)),
        qkv_bias=family == "qwen2",
        qk_norm=family == "qwen3",
        max_position_embeddings=int(d.get("max_position_embeddings", 4096)),
        dtype=dtype,
        param_dtype=dtype,
    )


def config_to_hf(cfg: ModelConfig, *, bos_id: int | None = None, eos_id: int | list[int] | None = None,
                 pad_id: int | None = None) -> dict[str, Any]:
    """A transformers-5 style config.json dict for `cfg`."""
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(cfg.rope_theta)}
    if cfg.rope_scaling and cfg.rope_scaling.get("rope_type", "default") != "default":
        rope = {**cfg.rope_scaling, "rope_theta": float(cfg.rope_theta)}
    d: dict[str, Any] = {
        "architectures": [ARCHITECTURES[cfg.family]],
        "model_type": cfg.family,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "tie_word_embeddings": cfg.tie_embeddings,
        "rope_parameters": rope,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "use_cache": True,
        "dtype": cfg.param_dtype,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
    }
    if cfg.family == "llama":
        d["mlp_bias"] = False
    else:
        d.update(use_sliding_window=False, sliding_window=None, layer_types=["full_attention"] * cfg.num_layers)
    return d


def read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


# --------------------------------------------------------------------------- weights


class HFWeights:
    """All tensors of an HF folder: model.safetensors or a sharded model.safetensors.index.json."""

    def __init__(self, folder: str):
        index = os.path.join(folder, "model.safetensors.index.json")
        single = os.path.join(folder, "model.safetensors")
        self.where: dict[str, str] = {}
        self._files: dict[str, SafetensorsFile] = {}
        if os.path.exists(index):
            wmap = read_json(index).get("weight_map")
            if not isinstance(wmap, dict):
                raise ValueError(f"{index}: missing key weight_map")
            for name, fname in wmap.items():
                self.where[name] = os.path.join(folder, fname)
        elif os.path.exists(single):
            for name in SafetensorsFile(single).names():
                self.where[name] = single
        else:
            raise FileNotFoundError(f"{single}: file not found (nor model.safetensors.index.json)")

    def _file(self, path: str) -> SafetensorsFile:
        if path not in self._files:
            self._files[path] = SafetensorsFile(path)
        return self._files[path]

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def get(self, name: str) -> np.ndarray:
        if name not in self.where:
            raise KeyError(name)
        f = self._file(self.where[name])
        if name not in f.header:
            raise ValueError(f"{f.path}: tensor {name} listed in the index is missing from the file")
        return f.get(name)


def hf_array_getter(weights: HFWeights, cfg: ModelConfig, source: str) -> Callable[[tuple, tuple], np.ndarray]:
    """A `get_array(path, shape)` for models.sharding.model_from_arrays reading HF tensors."""

    def get(path: tuple, shape: tuple) -> np.ndarray:
        name, transpose = hf_param_name(path)
        if name not in weights:
            raise ValueError(f"{source}: missing tensor {name}")
        raw = weights.get(name)
        arr = raw.T if transpose else raw
        if tuple(arr.shape) != tuple(shape):
            want = tuple(reversed(shape)) if transpose else tuple(shape)
            raise ValueError(f"{weights.where[name]}: tensor {name} has shape {tuple(raw.shape)}, expected {want}")
        return arr

    return get


def host_params(model) -> dict[tuple, np.ndarray]:
    """nnx path -> host NumPy array for every parameter (gathers across processes if needed)."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        arr = var.get_value()
        if not arr.is_fully_addressable:
            arr = multihost_utils.process_allgather(arr, tiled=True)
        out[tuple(path)] = np.asarray(arr)
    return out


def save_hf_weights(model, out_dir: str, *, dtype: str | None = None, write: bool = True) -> list[str]:
    """Write model.safetensors (HF names, [out, in] layout). Returns the tensor names.

    Every process must call this (sharded parameters are gathered); only those with `write` write.
    """
    tensors = {}
    for path, arr in host_params(model).items():
        name, transpose = hf_param_name(path)
        if transpose:
            arr = arr.T
        if dtype is not None:
            arr = arr.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype))
        tensors[name] = np.ascontiguousarray(arr)
    if write:
        save_file(tensors, os.path.join(out_dir, "model.safetensors"), {"format": "pt"})
    return sorted(tensors)
