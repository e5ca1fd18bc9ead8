"""`egrpo convert`: a .gguf file or HF folder -> an HF folder (config.json, model.safetensors, tokenizer)."""

from __future__ import annotations

import argparse
import os
import sys


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="input: .gguf file or HF folder")
    p.add_argument("--out", required=True, help="output HF folder (created)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="dtype of the written weights (GGUF weights are dequantised to this)")


def run(args: argparse.Namespace) -> int:
    from egrpo_jax.models import load_pretrained, save_pretrained

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
