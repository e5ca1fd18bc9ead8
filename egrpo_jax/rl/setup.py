"""The learner's settings (optimizer, loss) from a run config, shared by sft and train."""

from __future__ import annotations

from egrpo_jax.assembly import sampling_params
from egrpo_jax.rl.learner import LossSettings, OptimSettings
from egrpo_jax.sampling.api import SamplingParams


def optim_settings(cfg) -> OptimSettings:
    o = cfg.optim
    return OptimSettings(name=o.name, lr=o.lr, warmup_steps=o.warmup_steps, schedule=o.schedule, total_steps=cfg.train.steps,
                         min_lr_ratio=o.min_lr_ratio, clip_norm=o.clip_norm, weight_decay=o.weight_decay,
                         b1=o.b1, b2=o.b2)


def loss_settings(cfg, kind: str) -> LossSettings:
    # RL scores rollouts under the sampler's distribution (temperature / top-k / top-p); SFT plainly
    return LossSettings(kind=kind, eps_low=cfg.rl.eps_low, eps_high=cfg.rl.eps_high,
                        beta=cfg.rl.beta if kind == "rl" else 0.0, logprob_chunk=cfg.optim.logprob_chunk,
                        is_cap=cfg.rl.is_cap if kind == "rl" and cfg.rl.off_policy_steps else 0.0,
                        sampling=sampling_params(cfg) if kind == "rl" else SamplingParams())
