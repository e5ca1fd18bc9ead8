"""`egrpo convert`: a .gguf file, an HF folder or a training checkpoint folder -> an HF folder.

A training checkpoint folder (written by `egrpo sft` / `egrpo train`) describes its policy (the
decoder config and the tokenizer, policy.POLICY_FILE), so `--model DIR` reads it like the other
kinds; a LoRA run's adapters are merged into their base's weights (W + alpha / r * a @ b).
Checkpoints written before that need the run's config: `--checkpoint DIR --config FILE`.
The HF folder has config.json, generation_config.json, model.safetensors and the tokenizer files.
"""

from __future__ import annotations

import argparse
import os
import sys


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="input: .gguf file, HF folder or training checkpoint folder")
    p.add_argument("--checkpoint", default=None, help="input: a training checkpoint folder without policy.json "
                   "(needs --config)")
    p.add_argument("--config", default=None, help="the config file of the run that wrote --checkpoint")
    p.add_argument("--out", required=True, help="output HF folder (created)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="dtype of the written weights (GGUF weights are dequantised to this)")


def run(args: argparse.Namespace) -> int:
    if (args.model is None) == (args.checkpoint is None):
        raise ValueError("give exactly one of --model (GGUF / HF folder / checkpoint folder) or --checkpoint")
    source = args.model or args.checkpoint
    if os.path.abspath(source) == os.path.abspath(args.out):
        raise ValueError(f"--out {args.out}: must differ from the input")
    if args.checkpoint is not None:
        model, tokenizer = _from_run_config(args)
    else:
        from egrpo_jax.policy import load_policy

        loaded = load_policy(args.model, dtype="float32")
        model, tokenizer = loaded.model, loaded.tokenizer
    from egrpo_jax.models import Tokenizer, save_pretrained

    if not isinstance(tokenizer, Tokenizer):  # the byte tokenizer has no HF files
        print(f"egrpo convert: the policy's tokenizer ({type(tokenizer).__name__}) has no HF tokenizer files; "
              "writing weights and config only", file=sys.stderr)
        tokenizer = None
    save_pretrained(model, tokenizer, args.out, dtype=args.dtype)
    c = model.cfg
    merged = f", LoRA rank {c.lora_rank} adapters merged" if c.lora_rank else ""
    print(f"wrote {args.out}: {c.family}, {c.num_layers} layers, hidden {c.hidden_size}, vocab {c.vocab_size}, "
          f"{c.num_params / 1e6:.2f}M params ({args.dtype}){merged}{'' if tokenizer else ', no tokenizer'} "
          f"from {source}")
    return 0


def _from_run_config(args: argparse.Namespace):
    from egrpo_jax.assembly import build_policy
    from egrpo_jax.config import load_config
    from egrpo_jax.mesh import single_device_mesh

    if args.config is None:
        raise ValueError("--checkpoint needs --config (the run's config file)")
    if not os.path.isdir(args.checkpoint):
        raise ValueError(f"--checkpoint {args.checkpoint}: not a folder")
    cfg = load_config(args.config, ["checkpoint.dir="])
    return build_policy(cfg, single_device_mesh(), init_from=args.checkpoint)
