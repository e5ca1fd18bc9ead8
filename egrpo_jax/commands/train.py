"""`egrpo train --config configs/tiny_cpu.py [--config.rl.alpha=0.3 ...] [--resume]`: E-GRPO / GRPO.

rl.alpha = 0 trains plain GRPO. Start from an SFT run with --config.checkpoint.init_from=DIR.
"""

from __future__ import annotations

from egrpo_jax.config import add_run_arguments


def configure(parser) -> None:
    add_run_arguments(parser)


def run(args) -> int:
    from egrpo_jax.config import run_config_from_args
    from egrpo_jax.rl.loop import run_train

    cfg = run_config_from_args(args)
    m = run_train(cfg)
    keys = ("reward/mean", "accuracy", "entity_match/all", "tool_calls/per_rollout", "loss", "time/step_s")
    print("train done: " + ", ".join(f"{k}={m[k]:.4g}" for k in keys if k in m))
    return 0
