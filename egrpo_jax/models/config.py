"""Decoder hyper-parameters: one dataclass for the Llama / Qwen2 / Qwen3 dense family."""

from __future__ import annotations

import dataclasses
from typing import Any

from egrpo_jax.config import DTYPES, FAMILIES, LORA_TARGETS


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
    # LoRA (models.decoder.Adapter; rank 0 = none): adapters on the `lora_targets` projections, each
    # adding (lora_alpha / lora_rank) * (x @ A) @ B; with adapters the base weights are kept in
    # lora_base_dtype (frozen) and the adapters in param_dtype (trained)
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    lora_base_dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))  # a list after a JSON round trip
        if self.family not in FAMILIES:
            raise ValueError(f"model.family must be one of {FAMILIES}, got {self.family!r}")
        for key in ("dtype", "param_dtype", "lora_base_dtype"):
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
        if self.lora_rank < 0 or self.lora_alpha <= 0:
            raise ValueError(f"model.lora: rank must be >= 0 and alpha > 0, got {self.lora_rank}, {self.lora_alpha}")
        if not self.lora_targets or not set(self.lora_targets) <= set(LORA_TARGETS):
            raise ValueError(f"model.lora.targets must be a non-empty subset of {LORA_TARGETS}, "
                             f"got {self.lora_targets}")

    @property
    def base_param_dtype(self) -> str:
        """The dtype of every weight that is not a LoRA adapter."""
        return self.lora_base_dtype if self.lora_rank else self.param_dtype

    def lora_settings(self) -> dict[str, Any]:
        """The LoRA fields, as ModelConfig.replace takes them (to put the same adapters on another base)."""
        return {k: getattr(self, k) for k in ("lora_rank", "lora_alpha", "lora_targets", "lora_base_dtype")}

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
