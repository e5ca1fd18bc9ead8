"""`egrpo train --config configs/tiny_cpu.py [--config.rl.alpha=0.3 ...] [--resume]`: E-GRPO / GRPO.

rl.alpha = 0 trains plain GRPO. Start from an SFT run with --config.checkpoint.init_from=DIR.
"""

from __future__ import annotations

from egrpo_jax.config import add_config_arguments


def configure(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest complete checkpoint in checkpoint.dir (if any)")


def run(args) -> int:
    from egrpo_jax.config import load_config
    from egrpo_jax.mesh import init_distributed
    from egrpo_jax.rl.loop import run_train

    overrides = list(args.config_overrides) + (["checkpoint.resume=true"] if args.resume else [])
    cfg = load_config(args.config, overrides)
    # multi-host: EGRPO_COORDINATOR/_NUM_PROCESSES/_PROCESS_ID, or EGRPO_DISTRIBUTED=1 on TPU pods
    init_distributed()
    m = run_train(cfg)
    keys = ("reward/mean", "accuracy", "entity_match/all", "tool_calls/per_rollout", "loss", "time/step_s")
    print("train done: " + ", ".join(f"{k}={m[k]:.4g}" for k in keys if k in m))
    return 0
