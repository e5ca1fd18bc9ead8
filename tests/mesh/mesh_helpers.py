"""Deterministic host weights for a tiny decoder (identical in every process), shared by the mesh tests."""

from __future__ import annotations

import zlib

import numpy as np

from egrpo_jax.models.config import tiny_config

CFG = tiny_config("qwen2", vocab_size=128, hidden_size=64, intermediate_size=128, num_heads=4, num_kv_heads=2,
                  head_dim=16, num_layers=2)
TOKENS = np.array([[3, 9, 27, 81, 115, 4, 8, 16], [1, 2, 3, 4, 5, 6, 7, 8],
                   [100, 50, 25, 12, 6, 3, 1, 0], [7, 7, 7, 7, 7, 7, 7, 7]], np.int32)


def host_array(path: tuple, shape: tuple) -> np.ndarray:
    """Weights seeded by the parameter's name: no RNG state shared between processes is needed."""
    rng = np.random.default_rng(zlib.crc32(".".join(map(str, path)).encode()))
    if path[-1] == "scale":
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)
