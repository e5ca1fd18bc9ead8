"""`egrpo sft --config configs/tiny_cpu.py [--config.KEY=VALUE ...]`: SFT cold start on demos."""

from __future__ import annotations

from egrpo_jax.config import add_run_arguments


def configure(parser) -> None:
    add_run_arguments(parser)


def run(args) -> int:
    from egrpo_jax.config import run_config_from_args
    from egrpo_jax.rl.sft import run_sft

    cfg = run_config_from_args(args)
    m = run_sft(cfg)
    print("sft done: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(m.items()) if k != "data/batch_hash"))
    return 0
