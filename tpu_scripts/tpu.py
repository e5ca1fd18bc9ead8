#!/usr/bin/env python3
"""Create, set up, launch, watch, stop and delete a Cloud TPU VM or pod slice for `egrpo train`.

Standard library only (runs from a laptop without the project installed). Every subcommand builds
the exact gcloud / git command lines first; `--dry-run` prints them, one per line, instead of
running them. Multi-host: `launch` runs the same command on every worker (`--worker=all`) with
EGRPO_DISTRIBUTED=1, so each worker's `egrpo train` calls `jax.distributed.initialize()`, which
discovers the pod topology by itself (egrpo_jax/mesh.py: init_distributed).

    python tpu_scripts/tpu.py create --name egrpo-v5p --zone us-east5-a --accelerator-type v5p-32
    python tpu_scripts/tpu.py setup  --name egrpo-v5p --zone us-east5-a
    python tpu_scripts/tpu.py launch --name egrpo-v5p --zone us-east5-a --config configs/qwen2_5_7b_tpu.py
    python tpu_scripts/tpu.py logs   --name egrpo-v5p --zone us-east5-a --follow
    python tpu_scripts/tpu.py stop   --name egrpo-v5p --zone us-east5-a
    python tpu_scripts/tpu.py delete --name egrpo-v5p --zone us-east5-a
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GCLOUD_TPU = ["gcloud", "compute", "tpus", "tpu-vm"]

# Accelerator family -> default TPU VM software version (override with --version).
RUNTIME_VERSIONS = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}

# Files on every worker (relative to the login user's home directory).
REMOTE_TARBALL = "egrpo-jax.tar.gz"
LOG_FILE = "egrpo-train.log"
PID_FILE = "egrpo-train.pid"

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
_ACCEL = re.compile(r"^(v2|v3|v4|v5litepod|v5p|v6e)-([1-9][0-9]*)$")
_PROJECT = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REMOTE_DIR = re.compile(r"^[A-Za-z0-9._/-]+$")


class UsageError(ValueError):
    """A bad input; printed as one line."""


# --- validation -------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"--name {name!r}: use 1-63 lower-case letters, digits and '-', starting with a letter"
        )
    return name


def check_zone(zone: str) -> str:
    if not _ZONE.match(zone):
        raise UsageError(f"--zone {zone!r}: expected a zone like us-central2-b or europe-west4-a")
    return zone


def check_accelerator(acc: str) -> str:
    if acc.startswith("v5e-"):
        raise UsageError(f"--accelerator-type {acc!r}: v5e slices are named v5litepod-N (e.g. v5litepod-16)")
    if not _ACCEL.match(acc):
        families = ", ".join(f"{f}-N" for f in RUNTIME_VERSIONS)
        raise UsageError(f"--accelerator-type {acc!r}: expected one of {families} (e.g. v5p-8, v4-32)")
    return acc


def check_project(project: str | None) -> str | None:
    if project is not None and not _PROJECT.match(project):
        raise UsageError(f"--project {project!r}: a project id is 6-30 lower-case letters, digits and '-'")
    return project


def check_env(pairs: list[str]) -> list[tuple[str, str]]:
    out = []
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise UsageError(f"--env {p!r}: expected KEY=VALUE with KEY a shell variable name")
        out.append((key, value))
    return out


def check_worker(worker: str) -> str:
    if worker != "all" and not worker.isdigit():
        raise UsageError(f"--worker {worker!r}: expected 'all' or a worker index (0, 1, ...)")
    return worker


def check_remote_dir(d: str) -> str:
    # Interpolated unquoted after "~/" in remote shell commands, so keep it to safe characters.
    if not _REMOTE_DIR.match(d) or d.startswith("/") or ".." in d.split("/"):
        raise UsageError(
            f"--remote-dir {d!r}: expected a relative path of letters, digits, '.', '_', '-', '/'"
        )
    return d


def default_version(acc: str) -> str:
    return RUNTIME_VERSIONS[acc.split("-", 1)[0]]


# --- command builders (pure: return argv lists) -----------------------------------------------


def _where(args) -> list[str]:
    out = [f"--zone={args.zone}"]
    if args.project:
        out.append(f"--project={args.project}")
    return out


def ssh(args, remote: str, worker: str = "all") -> list[str]:
    return [*GCLOUD_TPU, "ssh", args.name, *_where(args), f"--worker={worker}", f"--command={remote}"]


def build_create(args) -> list[list[str]]:
    cmd = [
        *GCLOUD_TPU,
        "create",
        args.name,
        *_where(args),
        f"--accelerator-type={args.accelerator_type}",
        f"--version={args.version or default_version(args.accelerator_type)}",
    ]
    if args.spot:
        cmd.append("--spot")
    return [cmd]


def build_setup(args) -> list[list[str]]:
    tarball = args.tarball or f"/tmp/egrpo-jax-{args.name}.tar.gz"
    py = shlex.quote(args.python)
    remote = " && ".join(
        [
            "set -e",
            # TPU VM images ship an older python3; install the one the project needs if it is missing.
            (
                f"(command -v {py} >/dev/null || (sudo apt-get update -qq && "
                f"sudo apt-get install -y -qq {py} {py}-venv))"
            ),
            f"mkdir -p ~/{args.remote_dir}",
            f"tar -xzf ~/{REMOTE_TARBALL} -C ~/{args.remote_dir}",
            f"cd ~/{args.remote_dir}",
            f"{py} -m venv .venv",
            ".venv/bin/pip install -q --upgrade pip",
            f".venv/bin/pip install -q -e {shlex.quote('.[' + args.extras + ']')}",
            ".venv/bin/python -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())'",
        ]
    )
    return [
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar.gz", f"--output={tarball}", args.ref],
        [*GCLOUD_TPU, "scp", tarball, f"{args.name}:{REMOTE_TARBALL}", *_where(args), "--worker=all"],
        ssh(args, remote),
    ]


def build_launch(args) -> list[list[str]]:
    env = ([] if args.no_distributed else [("EGRPO_DISTRIBUTED", "1")]) + check_env(args.env)
    train = [".venv/bin/egrpo", "train", "--config", args.config, *args.train_args]
    line = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env), shlex.join(train)])
    # setsid + nohup + redirected stdio: the run survives the ssh session; its pid (also its
    # process-group id) goes to PID_FILE so `stop` can end exactly this run.
    remote = (
        f"cd ~/{args.remote_dir} && "
        f"setsid nohup env {line} > ~/{LOG_FILE} 2>&1 < /dev/null & echo $! > ~/{PID_FILE}"
    )
    return [ssh(args, remote)]


def build_logs(args) -> list[list[str]]:
    flags = f"-n {args.lines}" + (" -F" if args.follow else "")
    return [ssh(args, f"tail {flags} ~/{LOG_FILE}", worker=args.worker)]


def build_stop(args) -> list[list[str]]:
    remote = (
        f"if [ -f ~/{PID_FILE} ]; then pid=$(cat ~/{PID_FILE}); "
        f"kill -TERM -- -$pid 2>/dev/null || kill -TERM $pid 2>/dev/null || true; "
        f"rm -f ~/{PID_FILE}; echo stopped $pid; else echo no run; fi"
    )
    return [ssh(args, remote)]


def build_delete(args) -> list[list[str]]:
    return [[*GCLOUD_TPU, "delete", args.name, *_where(args), "--quiet"]]


def build_describe(args) -> list[list[str]]:
    return [[*GCLOUD_TPU, "describe", args.name, *_where(args)]]


BUILDERS = {
    "create": (build_create, "create a TPU VM or pod slice"),
    "setup": (build_setup, "copy the repo (git archive) to every worker and install it with [tpu]"),
    "launch": (build_launch, "start `egrpo train --config ...` on every worker (jax.distributed)"),
    "logs": (build_logs, "show (or --follow) the training log of one worker"),
    "stop": (build_stop, "stop the training run on every worker"),
    "delete": (build_delete, "delete the TPU VM / slice"),
    "describe": (build_describe, "show the TPU VM's state"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tpu.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in BUILDERS.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--name", required=True, help="TPU VM name")
        p.add_argument("--zone", required=True, help="e.g. us-central2-b (v4), us-east5-a (v5p)")
        p.add_argument("--project", default=None, help="GCP project (default: gcloud's configured one)")
        p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
        if name == "create":
            p.add_argument("--accelerator-type", required=True, help="e.g. v5p-8, v5litepod-16, v4-32")
            p.add_argument("--version", default=None, help="TPU software version (default: per family)")
            p.add_argument("--spot", action="store_true", help="create a Spot (preemptible) TPU")
        if name in ("setup", "launch"):
            p.add_argument("--remote-dir", default="egrpo-jax", help="checkout folder under ~ on each worker")
        if name == "setup":
            p.add_argument("--ref", default="HEAD", help="git revision to copy (committed files only)")
            p.add_argument(
                "--tarball", default=None, help="local archive path (default /tmp/egrpo-jax-NAME.tar.gz)"
            )
            p.add_argument(
                "--python", default="python3.11", help="python on the workers (apt-installed if absent)"
            )
            p.add_argument("--extras", default="tpu", help="pip extras to install")
        if name == "launch":
            p.add_argument("--config", required=True, help="config file, relative to the repo root")
            p.add_argument(
                "--env",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="extra environment for the run (repeatable)",
            )
            p.add_argument(
                "--no-distributed",
                action="store_true",
                help="single-host VM: do not set EGRPO_DISTRIBUTED=1 (no jax.distributed)",
            )
            p.add_argument(
                "train_args", nargs=argparse.REMAINDER, help="after --: more `egrpo train` arguments"
            )
        if name == "logs":
            p.add_argument("--worker", default="0", help="worker index or 'all'")
            p.add_argument("--lines", type=int, default=100, help="lines of history to show")
            p.add_argument("--follow", action="store_true", help="keep streaming (tail -F)")
    return parser


def validate(args) -> None:
    check_name(args.name)
    check_zone(args.zone)
    check_project(args.project)
    if args.command == "create":
        check_accelerator(args.accelerator_type)
    if hasattr(args, "remote_dir"):
        check_remote_dir(args.remote_dir)
    if args.command == "launch":
        check_env(args.env)
        if args.train_args and args.train_args[0] == "--":
            args.train_args = args.train_args[1:]
        # `file.py:ARG` passes ARG to get_config (e.g. the slice name), as in egrpo_jax.config
        cfg = Path(args.config.rsplit(":", 1)[0] if ":" in args.config else args.config)
        if cfg.is_absolute() or not (REPO_ROOT / cfg).is_file():
            raise UsageError(
                f"--config {args.config!r}: not a file under the repo root {REPO_ROOT} "
                "(setup copies the repo, so configs are given relative to it)"
            )
    if args.command == "logs":
        check_worker(args.worker)
        if args.lines < 0:
            raise UsageError(f"--lines {args.lines}: must be >= 0")
    if args.command == "setup" and not re.match(r"^[A-Za-z0-9_.+-]+$", args.extras):
        raise UsageError(f"--extras {args.extras!r}: expected comma-separated extra names, e.g. tpu")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        validate(args)
        commands = BUILDERS[args.command][0](args)
    except UsageError as e:
        print(f"tpu.py {args.command}: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        for cmd in commands:
            print(shlex.join(cmd))
        return 0
    for tool in sorted({c[0] for c in commands}):
        if shutil.which(tool) is None:
            print(
                f"tpu.py {args.command}: error: {tool!r} not found on PATH (install the Google Cloud SDK / git)",
                file=sys.stderr,
            )
            return 127
    for cmd in commands:
        print("+ " + shlex.join(cmd), file=sys.stderr, flush=True)
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            print(f"tpu.py {args.command}: error: command exited with status {rc}", file=sys.stderr)
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
