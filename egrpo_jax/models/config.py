"""Decoder hyper-parameters: one dataclass for the Llama / Qwen2 / Qwen3 dense family."""

from __future__ import annotations

import dataclasses
from typing import Any

from egrpo_jax.config import DTYPES, FAMILIES


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    family: str = "llama"
    vocab_size: int = 256
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    rope_theta: float = 10000.0
    # None, or {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
    # "original_max_position_embeddings"}
    rope_scaling: dict[str, Any] | None = None
    rms_norm_eps: float = 1e-6
    tie_embeddings: bool = False
    qkv_bias: bool = False  # Qwen2 / Qwen2.5
    qk_norm: bool = False  # Qwen3
    max_position_embeddings: int = 4096
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    remat: bool = False  # rematerialise each layer in the backward pass

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"model.family must be one of {FAMILIES}, got {self.family!r}")
        for key in ("dtype", "param_dtype"):
            if getattr(self, key) not in DTYPES:
                raise ValueError(f"model.{key} must be one of {DTYPES}, got {getattr(self, key)!r}")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads",
                    "num_kv_heads", "head_dim"):
            if int(getattr(self, key)) <= 0:
                raise ValueError(f"model.{key} must be > 0, got {getattr(self, key)}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"model.num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})"
            )
        if self.rope_scaling is not None and self.rope_scaling.get("rope_type", "default") not in (
            "default", "llama3"
        ):
            raise ValueError(f"model.rope_scaling: unsupported rope_type {self.rope_scaling.get('rope_type')!r}")

    def replace(self, **kw: Any) -> ModelConfig:
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def num_params(self) -> int:
        h, i, v = self.hidden_size, self.intermediate_size, self.vocab_size
        q = self.num_heads * self.head_dim
        kv = self.num_kv_heads * self.head_dim
        per_layer = h * (q + 2 * kv) + q * h + 3 * h * i + 2 * h
        if self.qkv_bias:
            per_layer += q + 2 * kv
        if self.qk_norm:
            per_layer += 2 * self.head_dim
        emb = v * h * (1 if self.tie_embeddings else 2)
        return self.num_layers * per_layer + emb + h


def tiny_config(family: str = "llama", **kw: Any) -> ModelConfig:
    """A tiny model for tests and the CPU demo."""
    base = {
        "family": family,
        "qkv_bias": family == "qwen2",
        "qk_norm": family == "qwen3",
        "tie_embeddings": family == "llama",
    }
    base.update(kw)
    return ModelConfig(**base)
