"""`egrpo generate`: load a policy (HF folder, .gguf or training checkpoint folder) and continue a chat
prompt (greedy by default)."""

from __future__ import annotations

import argparse
import json


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="HF folder (config.json + safetensors), .gguf file or training "
                   "checkpoint folder")
    p.add_argument("--prompt", required=True, help="user message (wrapped in the model's chat template)")
    p.add_argument("--system", default=None, help="optional system message")
    p.add_argument("--raw", action="store_true", help="feed --prompt as is, without the chat template")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--json", action="store_true", help="print a JSON object with prompt/new token ids and text")


def run(args: argparse.Namespace) -> int:
    from egrpo_jax.models import Tokenizer
    from egrpo_jax.policy import load_policy
    from egrpo_jax.sampling import generate

    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    loaded = load_policy(args.model, dtype=args.dtype)
    tok = loaded.tokenizer
    if args.raw:
        text = args.prompt
    else:
        messages = ([{"role": "system", "content": args.system}] if args.system else [])
        messages.append({"role": "user", "content": args.prompt})
        text = tok.apply_chat_template(messages, add_generation_prompt=True)
    ids = tok.encode(text)
    out = generate(loaded.model, tok, [ids], max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   top_p=args.top_p, top_k=args.top_k, seed=args.seed)[0]
    new = list(out.tokens)
    shown = new[:-1] if new and new[-1] in tok.eos_ids else new
    answer = tok.decode(shown, skip_special_tokens=True) if isinstance(tok, Tokenizer) else tok.decode(shown)
    if args.json:
        print(json.dumps({"prompt": text, "prompt_ids": ids, "new_ids": new, "text": answer,
                          "stop_reason": out.stop_reason}, ensure_ascii=False))
    else:
        print(answer)
    return 0
