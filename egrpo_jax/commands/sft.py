"""`egrpo sft --config configs/tiny_cpu.py [--config.KEY=VALUE ...]`: SFT cold start on demos."""

from __future__ import annotations

from egrpo_jax.config import add_config_arguments


def configure(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest complete checkpoint in checkpoint.dir (if any)")


def run(args) -> int:
    from egrpo_jax.config import load_config
    from egrpo_jax.mesh import init_distributed
    from egrpo_jax.rl.sft import run_sft

    overrides = list(args.config_overrides) + (["checkpoint.resume=true"] if args.resume else [])
    cfg = load_config(args.config, overrides)
    # multi-host: EGRPO_COORDINATOR/_NUM_PROCESSES/_PROCESS_ID, or EGRPO_DISTRIBUTED=1 on TPU pods
    init_distributed()
    m = run_sft(cfg)
    print("sft done: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(m.items()) if k != "data/batch_hash"))
    return 0
