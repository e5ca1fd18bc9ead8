"""tpu_scripts/tpu.py: the exact commands each --dry-run prints, and one-line input errors."""

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "tpu_scripts"


@pytest.fixture(scope="module")
def tpu():
    spec = importlib.util.spec_from_file_location("egrpo_tpu_script", SCRIPTS / "tpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def dry(tpu, capsys, *argv):
    rc = tpu.main([*argv, "--dry-run"] if "--" not in argv else _before_dashes(argv))
    out = capsys.readouterr()
    assert rc == 0, out.err
    return [shlex.split(line) for line in out.out.splitlines()]


def _before_dashes(argv):
    i = argv.index("--")
    return [*argv[:i], "--dry-run", *argv[i:]]


def error(tpu, capsys, *argv):
    rc = tpu.main([*argv, "--dry-run"])
    out = capsys.readouterr()
    assert rc == 2 and out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


WHERE = ["--name", "egrpo-a", "--zone", "us-east5-a"]
SSH = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "egrpo-a", "--zone=us-east5-a"]


def test_create_commands(tpu, capsys):
    assert dry(tpu, capsys, "create", *WHERE, "--accelerator-type", "v5p-32") == [
        [
            "gcloud",
            "compute",
            "tpus",
            "tpu-vm",
            "create",
            "egrpo-a",
            "--zone=us-east5-a",
            "--accelerator-type=v5p-32",
            "--version=v2-alpha-tpuv5",
        ]
    ]
    cmds = dry(
        tpu,
        capsys,
        "create",
        *WHERE,
        "--accelerator-type",
        "v5litepod-16",
        "--spot",
        "--project",
        "my-proj-1",
    )
    assert cmds == [
        [
            "gcloud",
            "compute",
            "tpus",
            "tpu-vm",
            "create",
            "egrpo-a",
            "--zone=us-east5-a",
            "--project=my-proj-1",
            "--accelerator-type=v5litepod-16",
            "--version=v2-alpha-tpuv5-lite",
            "--spot",
        ]
    ]
    cmds = dry(tpu, capsys, "create", *WHERE, "--accelerator-type", "v4-8", "--version", "tpu-vm-base")
    assert cmds[0][-1] == "--version=tpu-vm-base"


def test_setup_commands(tpu, capsys):
    cmds = dry(tpu, capsys, "setup", *WHERE)
    assert cmds[0] == [
        "git",
        "-C",
        str(ROOT),
        "archive",
        "--format=tar.gz",
        "--output=/tmp/egrpo-jax-egrpo-a.tar.gz",
        "HEAD",
    ]
    assert cmds[1] == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "scp",
        "/tmp/egrpo-jax-egrpo-a.tar.gz",
        "egrpo-a:egrpo-jax.tar.gz",
        "--zone=us-east5-a",
        "--worker=all",
    ]
    assert cmds[2][:-1] == [*SSH, "--worker=all"]
    assert cmds[2][-1] == (
        "--command=set -e && (command -v python3.11 >/dev/null || (sudo apt-get update -qq && "
        "sudo apt-get install -y -qq python3.11 python3.11-venv)) && mkdir -p ~/egrpo-jax && "
        "tar -xzf ~/egrpo-jax.tar.gz -C ~/egrpo-jax && cd ~/egrpo-jax && python3.11 -m venv .venv && "
        ".venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[tpu]' && "
        ".venv/bin/python -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())'"
    )
    assert len(cmds) == 3


def test_launch_command_runs_same_train_on_all_workers(tpu, capsys, tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "q7b.py").write_text("")
    monkeypatch.setattr(tpu, "REPO_ROOT", tmp_path)
    cmds = dry(
        tpu,
        capsys,
        "launch",
        *WHERE,
        "--config",
        "configs/q7b.py",
        "--env",
        "XLA_FLAGS=--a --b",
        "--",
        "--steps",
        "10",
        "--out",
        "runs/my run",
    )
    assert len(cmds) == 1 and cmds[0][:-1] == [*SSH, "--worker=all"]
    assert cmds[0][-1] == (
        "--command=cd ~/egrpo-jax && setsid nohup env EGRPO_DISTRIBUTED=1 XLA_FLAGS='--a --b' "
        ".venv/bin/egrpo train --config configs/q7b.py --steps 10 --out 'runs/my run' "
        "> ~/egrpo-train.log 2>&1 < /dev/null & echo $! > ~/egrpo-train.pid"
    )
    single = dry(tpu, capsys, "launch", *WHERE, "--config", "configs/q7b.py", "--no-distributed")
    assert single[0][-1] == (
        "--command=cd ~/egrpo-jax && setsid nohup env .venv/bin/egrpo train --config configs/q7b.py "
        "> ~/egrpo-train.log 2>&1 < /dev/null & echo $! > ~/egrpo-train.pid"
    )


def test_logs_stop_delete_describe(tpu, capsys):
    assert dry(tpu, capsys, "logs", *WHERE) == [
        [*SSH, "--worker=0", "--command=tail -n 100 ~/egrpo-train.log"]
    ]
    assert dry(tpu, capsys, "logs", *WHERE, "--worker", "all", "--lines", "5", "--follow") == [
        [*SSH, "--worker=all", "--command=tail -n 5 -F ~/egrpo-train.log"]
    ]
    stop = dry(tpu, capsys, "stop", *WHERE)
    assert stop == [
        [
            *SSH,
            "--worker=all",
            (
                "--command=if [ -f ~/egrpo-train.pid ]; then pid=$(cat ~/egrpo-train.pid); "
                "kill -TERM -- -$pid 2>/dev/null || kill -TERM $pid 2>/dev/null || true; "
                "rm -f ~/egrpo-train.pid; echo stopped $pid; else echo no run; fi"
            ),
        ]
    ]
    assert dry(tpu, capsys, "delete", *WHERE) == [
        ["gcloud", "compute", "tpus", "tpu-vm", "delete", "egrpo-a", "--zone=us-east5-a", "--quiet"]
    ]
    assert dry(tpu, capsys, "describe", *WHERE, "--project", "my-proj-1") == [
        [
            "gcloud",
            "compute",
            "tpus",
            "tpu-vm",
            "describe",
            "egrpo-a",
            "--zone=us-east5-a",
            "--project=my-proj-1",
        ]
    ]


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["create", "--name", "Bad_Name", "--zone", "us-east5-a", "--accelerator-type", "v5p-8"],
            "--name 'Bad_Name'",
        ),
        (["create", "--name", "ok", "--zone", "useast5", "--accelerator-type", "v5p-8"], "--zone 'useast5'"),
        (
            ["create", "--name", "ok", "--zone", "us-east5-a", "--accelerator-type", "v5e-8"],
            "named v5litepod-N",
        ),
        (
            ["create", "--name", "ok", "--zone", "us-east5-a", "--accelerator-type", "v9-8"],
            "--accelerator-type 'v9-8'",
        ),
        (
            ["create", "--name", "ok", "--zone", "us-east5-a", "--accelerator-type", "v4-0"],
            "--accelerator-type 'v4-0'",
        ),
        (["delete", "--name", "ok", "--zone", "us-east5-a", "--project", "X"], "--project 'X'"),
        (["launch", "--name", "ok", "--zone", "us-east5-a", "--config", "nope.py"], "--config 'nope.py'"),
        (
            ["launch", "--name", "ok", "--zone", "us-east5-a", "--config", "pyproject.toml", "--env", "1X=2"],
            "--env '1X=2'",
        ),
        (["setup", "--name", "ok", "--zone", "us-east5-a", "--remote-dir", "../x"], "--remote-dir '../x'"),
        (["logs", "--name", "ok", "--zone", "us-east5-a", "--worker", "w1"], "--worker 'w1'"),
    ],
)
def test_bad_inputs_are_one_line_errors(tpu, capsys, argv, message):
    line = error(tpu, capsys, *argv)
    assert line.startswith(f"tpu.py {argv[0]}: error: ") and message in line


def test_shell_wrapper_passes_through(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run(
        ["bash", str(SCRIPTS / "delete.sh"), *WHERE, "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert out.stdout == "gcloud compute tpus tpu-vm delete egrpo-a --zone=us-east5-a --quiet\n"
    for name in ("create", "setup", "launch", "logs", "stop", "delete", "describe"):
        assert os.access(SCRIPTS / f"{name}.sh", os.X_OK)
