"""Group-relative advantages and the dynamic-sampling group filter (pure JAX / NumPy-compatible).

A_i = (R_i - mean_G R) / (std_G R + eps), with the population std (ddof = 0). A group whose
rewards are all equal (std below `zero_std_tol`) carries no learning signal: its advantages
are exactly 0, never NaN.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def group_advantages(
    rewards: jnp.ndarray, group_size: int, eps: float = 1e-6, zero_std_tol: float = 1e-6
) -> jnp.ndarray:
    """rewards [N * G] in group order (G consecutive rollouts per question) -> advantages [N * G]."""
    r = jnp.asarray(rewards, dtype=jnp.float32)
    if r.ndim != 1 or r.shape[0] % group_size:
        raise ValueError(f"rewards shape {r.shape} is not a multiple of group_size {group_size}")
    g = r.reshape(-1, group_size)
    mean = g.mean(axis=1, keepdims=True)
    std = g.std(axis=1, keepdims=True)
    flat = std < zero_std_tol
    adv = jnp.where(flat, 0.0, (g - mean) / jnp.where(flat, 1.0, std + eps))
    return adv.reshape(-1)


def informative_groups(rewards, group_size: int, tol: float = 1e-6) -> np.ndarray:
    """bool [N]: groups whose rewards are not all identical (DAPO's dynamic-sampling filter)."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    return (r.max(axis=1) - r.min(axis=1)) > tol
