"""`egrpo train --config configs/tiny_cpu.py [--config.rl.alpha=0.3 ...] [--resume]`: E-GRPO / GRPO.

rl.alpha = 0 trains plain GRPO. Start from an SFT run with --config.checkpoint.init_from=DIR.
"""

from __future__ import annotations

from egrpo_jax.commands.common import add_run_arguments, run_config


def configure(parser) -> None:
    add_run_arguments(parser)


def run(args) -> int:
    from egrpo_jax.rl.loop import run_train

    cfg = run_config(args, resume=args.resume)
    m = run_train(cfg)
    if not m:  # --resume of a finished run: no step ran
        print(f"train: {cfg.checkpoint.dir} already holds step train.steps = {cfg.train.steps}; nothing to do")
        return 0
    keys = ("reward/mean", "accuracy", "entity_match/all", "tool_calls/per_rollout", "loss", "time/step_s",
            "train/zero_variance_steps")
    print("train done: " + ", ".join(f"{k}={m[k]:.4g}" for k in keys if k in m))
    if cfg.checkpoint.dir:
        print(f"checkpoint: {cfg.checkpoint.dir}")
    return 0
