"""load_pretrained (HF folder or .gguf file -> sharded decoder + tokenizer) and save_pretrained (-> HF folder)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
from jax.sharding import Mesh

from egrpo_jax.config import DTYPES
from egrpo_jax.models import hf_io
from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.decoder import Decoder
from egrpo_jax.models.gguf_io import GGUFCheckpoint
from egrpo_jax.models.gguf_tokenizer import tokenizer_from_reader
from egrpo_jax.models.lora import has_adapters, merge_adapters
from egrpo_jax.models.sharding import model_from_arrays
from egrpo_jax.models.tokenizer import Tokenizer


@dataclasses.dataclass
class Pretrained:
    model: Decoder
    tokenizer: Tokenizer | None
    config: ModelConfig
    source: str


def load_config(path: str, *, dtype: str = "float32") -> ModelConfig:
    """The ModelConfig of an HF folder or .gguf file (no weights read)."""
    _check_dtype(dtype)
    if _is_gguf(path):
        return GGUFCheckpoint(path).config(dtype)
    cfg_path = os.path.join(path, "config.json")
    return hf_io.config_from_hf(hf_io.read_json(cfg_path), source=cfg_path, dtype=dtype)


def load_pretrained(path: str, *, mesh: Mesh | None = None, dtype: str = "float32",
                    param_dtype: str | None = None, remat: bool = False, with_tokenizer: bool = True,
                    lora: Mapping[str, Any] | None = None, seed: int = 0) -> Pretrained:
    """Load an HF folder (config.json + *.safetensors + tokenizer files) or a .gguf file.

    Parameters are created straight into their NamedShardings on `mesh` (default: one device); each
    tensor is read (and dequantised) on the host once and each device receives only its shard.
    `dtype` is the compute dtype; `param_dtype` defaults to it; `remat` rematerialises each layer in
    the backward pass (model.remat). `lora` (ModelConfig.lora_settings(), rank > 0) makes the file's
    weights the frozen base of fresh adapters drawn from `seed`.
    """
    _check_dtype(dtype)
    pdt = param_dtype or dtype
    _check_dtype(pdt)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: file not found")
    if _is_gguf(path):
        ckpt = GGUFCheckpoint(path)
        cfg = ckpt.config(dtype).replace(param_dtype=pdt, remat=remat, **(lora or {}))
        model = model_from_arrays(cfg, ckpt.array_getter(cfg), mesh=mesh, seed=seed)
        tok = tokenizer_from_reader(ckpt.reader, path) if with_tokenizer else None
        return Pretrained(model, tok, cfg, path)
    if not os.path.isdir(path):
        raise ValueError(f"{path}: expected an HF folder (config.json, *.safetensors) or a .gguf file")
    cfg_path = os.path.join(path, "config.json")
    cfg = hf_io.config_from_hf(hf_io.read_json(cfg_path), source=cfg_path, dtype=dtype).replace(
        param_dtype=pdt, remat=remat, **(lora or {}))
    weights = hf_io.HFWeights(path)
    model = model_from_arrays(cfg, hf_io.hf_array_getter(weights, cfg, path), mesh=mesh, seed=seed)
    tok = Tokenizer.from_pretrained(path) if with_tokenizer else None
    return Pretrained(model, tok, cfg, path)


def save_pretrained(model_or_loaded: Decoder | Pretrained, tokenizer: Tokenizer | None = None,
                    out_dir: str | None = None, *, dtype: str | None = None) -> str:
    """Write an HF folder transformers loads: config.json, generation_config.json, model.safetensors,
    tokenizer files. `dtype` casts the weights (default: the parameter dtype; float32 for a model
    with LoRA adapters, which are merged into their weights). Returns out_dir.

    Multi-process: every process must call this (parameters are gathered); process 0 writes.
    """
    if out_dir is None:
        raise ValueError("save_pretrained: out_dir is required")
    if isinstance(model_or_loaded, Pretrained):
        model, tokenizer = model_or_loaded.model, tokenizer or model_or_loaded.tokenizer
    else:
        model = model_or_loaded
    if has_adapters(model):  # an HF folder holds plain weights: W + (alpha / r) * a @ b
        model = merge_adapters(model)
    cfg: ModelConfig = model.cfg
    if dtype is not None:
        _check_dtype(dtype)
        cfg = cfg.replace(param_dtype=dtype)
    write = jax.process_index() == 0
    if write:
        os.makedirs(out_dir, exist_ok=True)
    hf_io.save_hf_weights(model, out_dir, dtype=dtype, write=write)
    if not write:
        return out_dir
    eos_ids = list(tokenizer.eos_ids) if tokenizer is not None else []
    ids = {"bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id, "pad_id": tokenizer.pad_token_id} if tokenizer else {}
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_io.config_to_hf(cfg, **ids), f, indent=2)
    gen = {"bos_token_id": ids.get("bos_id"), "eos_token_id": eos_ids or None, "pad_token_id": ids.get("pad_id")}
    with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in gen.items() if v is not None}, f, indent=2)
    if tokenizer is not None:
        tokenizer.save(out_dir)
    return out_dir


def _is_gguf(path: str) -> bool:
    return path.endswith(".gguf") and not os.path.isdir(path)


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
