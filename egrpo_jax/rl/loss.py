"""Clipped-surrogate policy loss with clip-higher, three aggregation modes and optional k3 KL.

All token tensors are aligned with the trajectory tokens, shape [B, T]: `logp[b, t]` is the
log-prob of token t given tokens < t (t = 0 is always prompt, weight 0).

Aggregation is expressed as per-token weights computed once over the WHOLE batch
(`token_weights`), so the loss is a plain weighted sum and gradient accumulation over
micro-batches gives exactly the full-batch loss:
- "seq_mean" (paper, default): mean over a sequence's loss tokens, then mean over sequences;
- "token_mean" (DAPO): mean over all loss tokens of the batch;
- "dr_grpo": sum over a sequence's tokens / a constant (max tokens), then mean over sequences.
Sequences with no loss token (padding rows, overlength rollouts, filtered groups) get weight 0
and do not count in the number of sequences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from egrpo_jax.config import AGGREGATIONS


def token_weights(mask: jnp.ndarray, aggregation: str, dr_grpo_norm: float = 1.0) -> jnp.ndarray:
    """Per-token loss weights [B, T] for `mask` [B, T] (1 on trained tokens)."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"rl.aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    m = jnp.asarray(mask, jnp.float32)
    ntok = m.sum(axis=1, keepdims=True)
    nseq = jnp.maximum((ntok > 0).sum(), 1)
    if aggregation == "seq_mean":
        return m / jnp.maximum(ntok, 1.0) / nseq
    if aggregation == "token_mean":
        return m / jnp.maximum(m.sum(), 1.0)
    return m / (dr_grpo_norm * nseq)


def k3_kl(logp: jnp.ndarray, ref_logp: jnp.ndarray) -> jnp.ndarray:
    """Schulman's k3 estimator of KL(pi || ref) per token: exp(r - p) - (r - p) - 1 >= 0."""
    d = ref_logp - logp
    return jnp.exp(d) - d - 1.0


def policy_loss_terms(
    logp: jnp.ndarray,
    old_logp: jnp.ndarray,
    advantages: jnp.ndarray,
    weights: jnp.ndarray,
    *,
    eps_low: float,
    eps_high: float,
    beta: float = 0.0,
    ref_logp: jnp.ndarray | None = None,
    is_cap: float = 0.0,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Weighted-sum loss and metric SUMS (over weight > 0 tokens) for one (micro-)batch.

    logp/old_logp/weights: [B, T]; advantages: [B] (one per rollout, broadcast over tokens).
    Metrics are sums so micro-batches add up; divide by `sums["tokens"]` for means.

    is_cap = 0: on-policy, the clipped ratio is pi / sampler. is_cap > 0 (off-policy rollouts, drawn
    from an older policy): the clipped ratio is pi / pi_at_step_start (1 in value: one update per
    step) and each token is weighted by the truncated importance weight
    min(pi_at_step_start / sampler, is_cap), a constant (no gradient through it).
    """
    adv = advantages[:, None].astype(jnp.float32)
    on = (weights > 0).astype(jnp.float32)
    log_ratio = jnp.where(on > 0, logp - old_logp, 0.0)  # keep padding finite
    if is_cap > 0:
        behaviour = jnp.exp(jax.lax.stop_gradient(log_ratio))
        iw = jnp.minimum(behaviour, is_cap)
        ratio = jnp.exp(log_ratio - jax.lax.stop_gradient(log_ratio))
    else:
        behaviour, iw = jnp.exp(log_ratio), 1.0
        ratio = behaviour
    clipped = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_tok = iw * jnp.maximum(-adv * ratio, -adv * clipped)
    if beta > 0:
        if ref_logp is None:
            raise ValueError("policy_loss_terms: beta > 0 needs ref_logp")
        kl_ref = jnp.where(on > 0, k3_kl(logp, ref_logp), 0.0)
        per_tok = per_tok + beta * kl_ref
    loss = jnp.sum(weights * per_tok)
    sums = {
        "tokens": on.sum(),
        # the clipped branch is active (zero gradient) on these tokens
        "clip_low": jnp.sum(on * ((adv < 0) & (ratio < 1.0 - eps_low))),
        "clip_high": jnp.sum(on * ((adv > 0) & (ratio > 1.0 + eps_high))),
        # k3 estimate of KL(sampler || learner) from sampler-drawn tokens
        "kl_sampler": jnp.sum(on * (behaviour - 1.0 - log_ratio)),
        "ratio": jnp.sum(on * behaviour),  # pi / sampler
        "is_truncated": jnp.sum(on * (behaviour > is_cap)) if is_cap > 0 else jnp.zeros(()),
    }
    if beta > 0:  # without a reference there is no KL to report (a 0 would read as "policy unmoved")
        sums["kl_ref"] = jnp.sum(on * kl_ref)
    return loss, sums


def sft_loss_terms(logp: jnp.ndarray, weights: jnp.ndarray) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Masked cross-entropy as a weighted sum (weights from token_weights(mask, 'token_mean'))."""
    on = (weights > 0).astype(jnp.float32)
    return -jnp.sum(weights * logp), {"tokens": on.sum(), "nll": -jnp.sum(on * logp)}
