"""Subprocess helpers for tests that start local servers or jax.distributed workers."""

import socket
import subprocess

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_all(procs: list[subprocess.Popen], timeout_s: float, what: str) -> list[str]:
    """Outputs of `procs` (started with stdout=PIPE, text=True); fails the test on a timeout or a
    non-zero exit, and never leaves a worker running."""
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout_s)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within {timeout_s}s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return logs
