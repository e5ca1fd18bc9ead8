"""`egrpo sft --config configs/tiny_cpu.py:sft [--config.KEY=VALUE ...] [--resume]`: SFT cold start on demos."""

from __future__ import annotations

from egrpo_jax.commands.common import add_run_arguments, run_config


def configure(parser) -> None:
    add_run_arguments(parser)


def run(args) -> int:
    from egrpo_jax.rl.sft import run_sft

    cfg = run_config(args, resume=args.resume)
    m = run_sft(cfg)
    if "loss" not in m:  # --resume of a finished run: no step ran
        print(f"sft: {cfg.checkpoint.dir} already holds step train.steps = {cfg.train.steps}; nothing to do")
        return 0
    print("sft done: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(m.items()) if k != "data/batch_hash"))
    if cfg.checkpoint.dir:
        print(f"checkpoint: {cfg.checkpoint.dir} (convert, eval, generate and train's checkpoint.init_from read it)")
    return 0
