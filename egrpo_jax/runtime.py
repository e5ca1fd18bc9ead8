"""Process-level runtime set-up that must happen before jax is imported.

CPU test mode: `EGRPO_CPU_DEVICES=N` (or `egrpo --cpu-devices N ...`) makes XLA expose N fake
CPU devices so every sharded path (mesh, shardings, collectives) runs on a laptop or in CI.
"""

from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def set_cpu_devices(n: int) -> None:
    """Ask XLA for `n` host (CPU) devices. Must run before `import jax`."""
    if n < 1:
        raise ValueError(f"--cpu-devices must be >= 1, got {n}")
    if "jax" in sys.modules:
        import jax  # noqa: PLC0415

        if jax.device_count() != n and jax.default_backend() == "cpu":
            raise RuntimeError(
                f"cpu devices must be set before jax is imported (have {jax.device_count()}, asked {n})"
            )
        return
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_FLAG)]
    flags.append(f"{_FLAG}={n}")
    os.environ["XLA_FLAGS"] = " ".join(flags)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def apply_env() -> None:
    """Honour EGRPO_CPU_DEVICES if set (used by the CLI and the test suite)."""
    n = os.environ.get("EGRPO_CPU_DEVICES")
    if n:
        try:
            count = int(n)
        except ValueError:
            raise ValueError(f"EGRPO_CPU_DEVICES must be an integer, got {n!r}") from None
        set_cpu_devices(count)
