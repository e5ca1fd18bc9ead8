"""Read llama.cpp GGUF checkpoints (llama / qwen2 / qwen3) into our decoder, NumPy only.

Tensors are dequantised per tensor with `gguf.quants.dequantize` (lazily: one tensor in host memory at
a time). llama.cpp's converter permutes the rows of Q and K for the llama architecture (its RoPE
pairs adjacent dims, HF's pairs halves); we undo that permutation so HF "rotate half" RoPE applies.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import gguf
import numpy as np

from egrpo_jax.models.config import ModelConfig

Q = gguf.GGMLQuantizationType
SUPPORTED_TYPES = (Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0,
                   Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K)
ARCHS = ("llama", "qwen2", "qwen3")

# our per-layer sub-path -> GGUF name suffix (after "blk.{i}.")
_LAYER_NAMES: dict[tuple, str] = {
    ("attn_norm", "scale"): "attn_norm.weight",
    ("mlp_norm", "scale"): "ffn_norm.weight",
    ("attn", "wq"): "attn_q.weight",
    ("attn", "wk"): "attn_k.weight",
    ("attn", "wv"): "attn_v.weight",
    ("attn", "wo"): "attn_output.weight",
    ("attn", "bq"): "attn_q.bias",
    ("attn", "bk"): "attn_k.bias",
    ("attn", "bv"): "attn_v.bias",
    ("attn", "q_norm", "scale"): "attn_q_norm.weight",
    ("attn", "k_norm", "scale"): "attn_k_norm.weight",
    ("mlp", "w_gate"): "ffn_gate.weight",
    ("mlp", "w_up"): "ffn_up.weight",
    ("mlp", "w_down"): "ffn_down.weight",
}
_TOP_NAMES = {("embed",): "token_embd.weight", ("norm", "scale"): "output_norm.weight", ("lm_head",): "output.weight"}


def gguf_param_name(path: tuple) -> tuple[str, bool]:
    """(GGUF tensor name, transpose?) for an nnx state path."""
    path = tuple(path)
    if path in _TOP_NAMES:
        return _TOP_NAMES[path], path == ("lm_head",)
    if len(path) >= 3 and path[0] == "layers" and tuple(path[2:]) in _LAYER_NAMES:
        suffix = _LAYER_NAMES[tuple(path[2:])]
        return f"blk.{path[1]}.{suffix}", suffix.split(".")[0] in (
            "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down") and suffix.endswith("weight")
    raise KeyError(f"no GGUF name for parameter {'.'.join(map(str, path))}")


def open_gguf(path: str) -> gguf.GGUFReader:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return gguf.GGUFReader(path)
    except Exception as e:  # noqa: BLE001 - the reader raises bare ValueErrors without the path
        raise ValueError(f"{path}: not a readable GGUF file ({e})") from None


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Invert llama.cpp's Q/K row permutation (per head: interleaved pairs -> two halves)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class GGUFCheckpoint:
    def __init__(self, path: str):
        self.path = path
        self.reader = open_gguf(path)
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.arch = self.field("general.architecture")
        if self.arch not in ARCHS:
            raise ValueError(f"{path}: key general.architecture = {self.arch!r} is not supported (allowed: {ARCHS})")

    def field(self, key: str, default=None, *, required: bool = False):
        f = self.reader.fields.get(key)
        if f is None:
            if required:
                raise ValueError(f"{self.path}: missing key {key}")
            return default
        return f.contents()

    def config(self, dtype: str = "float32") -> ModelConfig:
        a = self.arch
        heads = int(self.field(f"{a}.attention.head_count", required=True))
        hidden = int(self.field(f"{a}.embedding_length", required=True))
        vocab = self.field(f"{a}.vocab_size")
        if vocab is None:
            vocab = self.dequantize("token_embd.weight").shape[0]
        scaling_type = self.field(f"{a}.rope.scaling.type", "none")
        if scaling_type not in ("none", "linear") or (scaling_type == "linear"
                                                       and float(self.field(f"{a}.rope.scaling.factor", 1.0)) != 1.0):
            raise ValueError(f"{self.path}: key {a}.rope.scaling.type = {scaling_type!r} is not supported")
        return ModelConfig(
            family=a,
            vocab_size=int(vocab),
            hidden_size=hidden,
            intermediate_size=int(self.field(f"{a}.feed_forward_length", required=True)),
            num_layers=int(self.field(f"{a}.block_count", required=True)),
            num_heads=heads,
            num_kv_heads=int(self.field(f"{a}.attention.head_count_kv", heads)),
            head_dim=int(self.field(f"{a}.attention.key_length", hidden // heads)),
            rope_theta=float(self.field(f"{a}.rope.freq_base", 10000.0)),
            rope_scaling=self._llama3_scaling(hidden // heads) if "rope_freqs.weight" in self.tensors else None,
            rms_norm_eps=float(self.field(f"{a}.attention.layer_norm_rms_epsilon", 1e-6)),
            tie_embeddings="output.weight" not in self.tensors,
            qkv_bias=a == "qwen2",
            qk_norm=a == "qwen3",
            max_position_embeddings=int(self.field(f"{a}.context_length", 4096)),
            dtype=dtype,
            param_dtype=dtype,
        )

    def _llama3_scaling(self, head_dim: int) -> dict:
        """llama.cpp stores llama3 RoPE scaling as per-frequency factors; recover the HF parameters."""
        factors = self.dequantize("rope_freqs.weight").astype(np.float64)
        theta = float(self.field(f"{self.arch}.rope.freq_base", 10000.0))
        freqs = 1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)
        factor = float(factors.max())
        for low, high, old in ((1.0, 4.0, 8192), (1.0, 4.0, 4096), (1.0, 4.0, 2048)):
            wl = 2 * math.pi / freqs
            smooth = (old / wl - low) / (high - low)
            want = np.where(wl < old / high, 1.0, np.where(wl > old / low, factor, 1 / ((1 - smooth) / factor + smooth)))
            if want.shape == factors.shape and np.allclose(want, factors, rtol=1e-4):
                return {"rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                        "original_max_position_embeddings": old}
        raise ValueError(f"{self.path}: tensor rope_freqs.weight does not match llama3 RoPE scaling (unsupported)")

    def dequantize(self, name: str) -> np.ndarray:
        t = self.tensors.get(name)
        if t is None:
            raise ValueError(f"{self.path}: missing tensor {name}")
        if t.tensor_type not in SUPPORTED_TYPES:
            raise ValueError(f"{self.path}: tensor {name} has unsupported type {t.tensor_type.name} "
                             f"(supported: {', '.join(q.name for q in SUPPORTED_TYPES)})")
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(arr, dtype=np.float32).reshape(tuple(int(d) for d in reversed(t.shape)))

    def array_getter(self, cfg: ModelConfig) -> Callable[[tuple, tuple], np.ndarray]:
        """`get_array(path, shape)` for models.sharding.model_from_arrays."""

        def get(path: tuple, shape: tuple) -> np.ndarray:
            name, transpose = gguf_param_name(path)
            if path == ("lm_head",) and name not in self.tensors and cfg.tie_embeddings:
                name = "token_embd.weight"
            raw = self.dequantize(name)
            want = tuple(reversed(shape)) if transpose else tuple(shape)
            if raw.shape != want:
                raise ValueError(f"{self.path}: tensor {name} has shape {raw.shape}, expected {want}")
            if self.arch == "llama" and name.endswith(("attn_q.weight", "attn_k.weight")):
                raw = unpermute_rows(raw, cfg.num_heads if "attn_q" in name else cfg.num_kv_heads)
            return raw.T if transpose else raw

        return get
