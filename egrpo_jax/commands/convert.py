"""`egrpo convert`: a .gguf file, an HF folder, or a training checkpoint -> an HF folder.

A training checkpoint (orbax folder written by `egrpo sft` / `egrpo train`) holds parameters only:
give the run's config too (`--checkpoint DIR --config FILE`), which names the architecture and
tokenizer. The HF folder has config.json, model.safetensors and the tokenizer files.
"""

from __future__ import annotations

import argparse
import os
import sys


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="input: .gguf file or HF folder")
    p.add_argument("--checkpoint", default=None, help="input: a training checkpoint folder (needs --config)")
    p.add_argument("--config", default=None, help="the config file of the run that wrote --checkpoint")
    p.add_argument("--out", required=True, help="output HF folder (created)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="dtype of the written weights (GGUF weights are dequantised to this)")


def run(args: argparse.Namespace) -> int:
    from egrpo_jax.models import load_pretrained, save_pretrained

    if (args.model is None) == (args.checkpoint is None):
        print("egrpo convert: give exactly one of --model (GGUF / HF folder) or --checkpoint", file=sys.stderr)
        return 2
    if args.checkpoint is not None:
        return _from_checkpoint(args)
    if os.path.abspath(args.model) == os.path.abspath(args.out):
        print("egrpo convert: --out must differ from --model", file=sys.stderr)
        return 2
    try:
        loaded = load_pretrained(args.model, dtype="float32", with_tokenizer=False)
        tokenizer = _tokenizer(args.model)
    except (FileNotFoundError, ValueError) as e:
        print(f"egrpo convert: {e}", file=sys.stderr)
        return 2
    save_pretrained(loaded.model, tokenizer, args.out, dtype=args.dtype)
    c = loaded.config
    print(f"wrote {args.out}: {c.family}, {c.num_layers} layers, hidden {c.hidden_size}, vocab {c.vocab_size}, "
          f"{c.num_params / 1e6:.1f}M params ({args.dtype}){'' if tokenizer else ', no tokenizer'}")
    return 0


def _tokenizer(path: str):
    from egrpo_jax.models.tokenizer import Tokenizer

    if os.path.isdir(path) and not any(
        os.path.exists(os.path.join(path, f)) for f in ("tokenizer.json", "tokenizer.model")
    ):
        print(f"egrpo convert: {path} has no tokenizer.json / tokenizer.model; writing weights and config only",
              file=sys.stderr)
        return None
    return Tokenizer.from_pretrained(path)


def _from_checkpoint(args: argparse.Namespace) -> int:
    from egrpo_jax.config import ConfigError, load_config
    from egrpo_jax.mesh import single_device_mesh
    from egrpo_jax.models import save_pretrained
    from egrpo_jax.rl.setup import build_policy

    if args.config is None:
        print("egrpo convert: --checkpoint needs --config (the run's config file)", file=sys.stderr)
        return 2
    if not os.path.isdir(args.checkpoint):
        print(f"egrpo convert: --checkpoint {args.checkpoint}: not a folder", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, [f"checkpoint.init_from={args.checkpoint}", "checkpoint.dir="])
        model, tokenizer = build_policy(cfg, single_device_mesh())
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"egrpo convert: {e}", file=sys.stderr)
        return 2
    if not hasattr(tokenizer, "save"):  # the byte-level test tokenizer has no files to write
        print("egrpo convert: the run's tokenizer cannot be saved; writing weights and config only",
              file=sys.stderr)
        tokenizer = None
    save_pretrained(model, tokenizer, args.out, dtype=args.dtype)
    c = model.cfg
    print(f"wrote {args.out}: {c.family}, {c.num_layers} layers, hidden {c.hidden_size}, vocab {c.vocab_size}, "
          f"{c.num_params / 1e6:.2f}M params ({args.dtype}) from {args.checkpoint}")
    return 0
