"""Argument handling shared by the commands that run on a config (`sft`, `train`, `eval`).

`--config FILE[:ARG]` names a config file; any number of `--config.KEY=VALUE` (or `--config.KEY
VALUE`) set single keys. argparse cannot declare options by prefix, so cli.main takes the overrides
out of the command line before parsing (`split_overrides`) and hands them to the command as
`args.config_overrides`; `add_config_arguments` declares --config and documents the overrides in
--help. Multi-host start-up (jax.distributed) happens in `run_config`, after the config is valid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# egrpo_jax.config is imported inside the functions: cli.main imports this module on every call, and
# ml_collections would double the time of `egrpo --help`.

PREFIX = "--config."


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(argv without the overrides, the overrides as 'key=value')."""
    rest, overrides, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith(PREFIX):
            body = a[len(PREFIX):]
            if "=" not in body:
                if i + 1 >= len(argv):
                    from egrpo_jax.config import ConfigError

                    raise ConfigError(f"config override {a}: missing value")
                body = f"{body}={argv[i + 1]}"
                i += 1
            overrides.append(body)
        else:
            rest.append(a)
        i += 1
    return rest, overrides


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`parser.parse_args` for a script that declared add_config_arguments: the overrides are taken out
    first and land in `args.config_overrides`; `argv` None reads the command line (sys.argv)."""
    rest, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(rest)
    args.config_overrides = overrides
    return args


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config FILE, and --help text for --config.KEY=VALUE."""
    parser.add_argument("--config", default=None,
                        help="config file (Python, get_config(); FILE:ARG calls get_config(ARG)); default: built-ins")
    parser.add_argument_group(
        "config overrides",
        "--config.KEY=VALUE (or --config.KEY VALUE), any number: set one key of the config, e.g. "
        "--config.rl.alpha=0.3 --config.train.steps=40. Keys and what each allows: egrpo_jax/config.py; "
        "a wrong key or value is refused before anything runs.")
    parser.set_defaults(config_overrides=[], takes_config=True)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of a training command (`egrpo sft` / `egrpo train`): config, overrides, --resume."""
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest complete checkpoint in checkpoint.dir (if any)")


def run_config(args: argparse.Namespace, extra: Sequence[str] = (), *, resume: bool = False):
    """The validated config of `args` (`extra` overrides first, then --config.KEY=VALUE, then
    checkpoint.resume for --resume); starts
    jax.distributed when the environment asks for it (EGRPO_COORDINATOR / _NUM_PROCESSES /
    _PROCESS_ID, or EGRPO_DISTRIBUTED=1 on TPU pods)."""
    from egrpo_jax.config import load_config
    from egrpo_jax.mesh import init_distributed  # imports jax: not at `egrpo --help` time

    overrides = [*extra, *args.config_overrides] + (["checkpoint.resume=true"] if resume else [])
    cfg = load_config(args.config, overrides)
    init_distributed()
    return cfg
