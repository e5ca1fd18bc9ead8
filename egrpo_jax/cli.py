"""`egrpo` command line: one module per subcommand under egrpo_jax/commands/.

Each command module defines `configure(parser)` and `run(args) -> int`. Modules are imported
lazily so `egrpo --help` is fast and `--cpu-devices` is applied before jax is imported.
`--cpu-devices N`, `--compile-cache DIR|off` and `--debug` are accepted anywhere on the line; `--config.KEY=VALUE` overrides
are taken out here and given to the commands that run on a config (commands.common).

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
from egrpo_jax.commands.common import PREFIX, split_overrides
from egrpo_jax.compile_cache import ENV, default_dir, use_cache
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
    "plan-memory": ("egrpo_jax.commands.plan_memory", "per-device memory of train / rollout calls vs a chip's HBM "
                    "(ahead-of-time compile on fake CPU devices)"),
}


def _global_options() -> argparse.ArgumentParser:
    """The options every command takes, anywhere on the line (shown in each command's --help)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options (anywhere on the line)")
    g.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                   help="expose N fake XLA CPU devices (CPU test mode); same as EGRPO_CPU_DEVICES=N")
    g.add_argument("--debug", action="store_true",
                   help="show the traceback of an error (default: one line); same as EGRPO_DEBUG=1")
    g.add_argument("--compile-cache", default=None, metavar="DIR|off",
                   help="jax's persistent compilation cache: compiled steps are kept in DIR and reused by "
                        f"the next run of the same shapes (default: {ENV} or {default_dir()}; off: none)")
    return p


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="egrpo", description="E-GRPO search-agent training in JAX",
                                     parents=[_global_options()])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[_global_options()])
        if name == load:
            importlib.import_module(module).configure(p)
    return parser


def _take_global_options(argv: list[str]) -> tuple[list[str], int | None, bool, str | None]:
    """(argv without --cpu-devices N / --debug / --compile-cache DIR, N, debug, DIR), wherever they stand."""
    rest, values, debug, i = [], {}, False, 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if a == "--debug":
            debug = True
        elif name in ("--cpu-devices", "--compile-cache"):
            values[name] = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 0 if "=" in a else 1
        else:
            rest.append(a)
        i += 1
    devices = values.get("--cpu-devices")
    if devices is not None:
        try:
            devices = int(devices)
        except ValueError:
            raise ValueError(f"--cpu-devices {devices!r}: must be an integer >= 1") from None
    if values.get("--compile-cache") == "":
        raise ValueError("--compile-cache needs a folder or `off`")
    return rest, devices, debug, values.get("--compile-cache")


def _command_name(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("EGRPO_DEBUG", "") not in ("", "0")
    name = None
    try:
        argv, devices, _, cache = _take_global_options(argv)
        name = _command_name(argv)
        name = name if name in COMMANDS else None
        # --cpu-devices must take effect before the command module imports jax
        if devices is not None:
            runtime.set_cpu_devices(devices)
        else:
            runtime.apply_env()
        use_cache(cache)
        argv, overrides = split_overrides(argv)
        parser = build_parser(load=name)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if overrides and not getattr(args, "takes_config", False):
            raise ValueError(f"{PREFIX}{overrides[0]}: `egrpo {args.command}` takes no config overrides")
        args.config_overrides = overrides
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except (ValueError, OSError, RunError) as e:
        if debug:
            raise
        print(f"egrpo {name or ''}: {one_line(e)}".replace("egrpo :", "egrpo:"), file=sys.stderr)
        return EXIT_RUN_FAILED if isinstance(e, RunError) else EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
