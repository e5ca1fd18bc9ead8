"""Group-relative advantages and the dynamic-sampling group filter (pure NumPy).

Every estimator subtracts the group mean (the GRPO baseline) and differs only in the scale, looked
up by name from `rl.advantage_norm` (ADVANTAGE_NORMS):
- "group_std" (the paper): A_i = (R_i - mean_G) / (std_G + eps). Scale-free per group, so in an
  all-wrong E-GRPO group partial rewards 0.30 vs 0.29 become advantages of +-1, the same weight as
  a correct-vs-wrong group (docs/rl-diagnosis.md measures what that does).
- "batch_std": A_i = (R_i - mean_G) / (std over the batch of R - mean_G, + eps). One scale for the
  whole batch, so a group's advantages stay proportional to its reward differences.
- "none" (Dr. GRPO): A_i = R_i - mean_G.
Population std (ddof = 0). A group whose rewards are all equal (spread below `zero_std_tol`)
carries no signal: its advantages are exactly 0, never NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from egrpo_jax.config import ADVANTAGE_NORMS


def _groups(rewards, group_size: int) -> np.ndarray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1 or group_size < 1 or r.shape[0] % group_size:
        raise ValueError(f"rewards shape {r.shape} is not a multiple of group_size {group_size}")
    return r.reshape(-1, group_size)


def _centred(g: np.ndarray, zero_std_tol: float) -> tuple[np.ndarray, np.ndarray]:
    flat = g.std(axis=1, keepdims=True) < zero_std_tol
    return np.where(flat, 0.0, g - g.mean(axis=1, keepdims=True)), flat


def _group_std(g: np.ndarray, eps: float, tol: float) -> np.ndarray:
    c, flat = _centred(g, tol)
    return np.where(flat, 0.0, c / (g.std(axis=1, keepdims=True) + eps))


def _batch_std(g: np.ndarray, eps: float, tol: float) -> np.ndarray:
    c, _ = _centred(g, tol)
    scale = c.std()
    return c / (scale + eps) if scale >= tol else np.zeros_like(c)


def _none(g: np.ndarray, eps: float, tol: float) -> np.ndarray:
    return _centred(g, tol)[0]


_ESTIMATORS: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "group_std": _group_std, "batch_std": _batch_std, "none": _none,
}
assert tuple(_ESTIMATORS) == ADVANTAGE_NORMS, "config.ADVANTAGE_NORMS names the estimators above"


def group_advantages(rewards, group_size: int, norm: str = "group_std", eps: float = 1e-6,
                     zero_std_tol: float = 1e-6) -> np.ndarray:
    """rewards [N * G] in group order (G consecutive rollouts per question) -> float32 advantages [N * G]."""
    if norm not in _ESTIMATORS:
        raise ValueError(f"rl.advantage_norm must be one of {ADVANTAGE_NORMS}, got {norm!r}")
    g = _groups(rewards, group_size)
    return _ESTIMATORS[norm](g, eps, zero_std_tol).reshape(-1).astype(np.float32)


def informative_groups(rewards, group_size: int, tol: float = 1e-6) -> np.ndarray:
    """bool [N]: groups whose rewards are not all identical (DAPO's dynamic-sampling filter)."""
    r = _groups(rewards, group_size)
    return (r.max(axis=1) - r.min(axis=1)) > tol
