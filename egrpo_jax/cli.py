"""`egrpo` command line: one module per subcommand under egrpo_jax/commands/.

Each command module defines `configure(parser)` and `run(args) -> int`. Modules are imported
lazily so `egrpo --help` is fast and `--cpu-devices` is applied before jax is imported.

Errors: bad input (ValueError / OSError: config, data, model files, paths) prints one line
`egrpo COMMAND: message` and exits 2; a failed run (errors.RunError: search outage, checkpoint
I/O) exits 1. `--debug` (anywhere on the line) or EGRPO_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from egrpo_jax import runtime
from egrpo_jax.errors import RunError, one_line

EXIT_BAD_INPUT, EXIT_RUN_FAILED = 2, 1

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("egrpo_jax.commands.generate", "generate text with a model (greedy by default)"),
    "convert": ("egrpo_jax.commands.convert", "convert a GGUF file / HF folder / checkpoint to an HF folder"),
    "gen-data": ("egrpo_jax.commands.gen_data", "generate entity-annotated QA data, corpus and SFT demos"),
    "index": ("egrpo_jax.commands.index", "build a bm25 / dense / hybrid index folder from a JSONL corpus"),
    "serve-search": ("egrpo_jax.commands.serve_search", "serve an index folder over HTTP (Search-R1 API)"),
    "eval-retrieval": ("egrpo_jax.commands.eval_retrieval", "recall@k of each hop's gold documents: bm25 / dense / hybrid"),
    "sft": ("egrpo_jax.commands.sft", "SFT cold start on demonstration trajectories"),
    "train": ("egrpo_jax.commands.train", "E-GRPO / GRPO reinforcement learning"),
    "eval": ("egrpo_jax.commands.eval", "evaluate a policy: Pass@k, tool calls, entity analysis"),
    "demo": ("egrpo_jax.commands.demo", "end-to-end demo on embedded defaults (CPU)"),
    "replicate": ("egrpo_jax.commands.replicate", "the paper's claims in miniature (GRPO vs E-GRPO)"),
}


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="egrpo", description="E-GRPO search-agent training in JAX")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="expose N fake XLA CPU devices (CPU test mode); same as EGRPO_CPU_DEVICES=N",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (default: one line); same as EGRPO_DEBUG=1")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == load:
            importlib.import_module(module).configure(p)
    return parser


def _command_name(argv: list[str]) -> str | None:
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--cpu-devices":
            skip = True
            continue
        if a.startswith("-"):
            continue
        return a if a in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("EGRPO_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere, like --cpu-devices
    name = _command_name(argv)
    # Parse --cpu-devices first: it must take effect before the command module imports jax.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--cpu-devices", type=int, default=None)
    known, _ = pre.parse_known_args(argv)
    if known.cpu_devices is not None:
        runtime.set_cpu_devices(known.cpu_devices)
    else:
        runtime.apply_env()
    parser = build_parser(load=name)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except (ValueError, OSError, RunError) as e:
        if debug:
            raise
        print(f"egrpo {name or ''}: {one_line(e)}".replace("egrpo :", "egrpo:"), file=sys.stderr)
        return EXIT_RUN_FAILED if isinstance(e, RunError) else EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
