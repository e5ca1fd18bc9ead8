"""The CPU arithmetic pin (runtime.pin_cpu_numerics) and the memory-aware schedule: what they add to
XLA_FLAGS, that a flag the user gave wins, that the pin takes effect (the bits differ from XLA's default
kernels') and that the schedule does not change the bits."""

import os
import platform
import subprocess
import sys

import pytest

from egrpo_jax import runtime

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 pin")

_PROBE = """
import os, sys
from egrpo_jax import runtime
if sys.argv[1] == "pin":
    runtime.apply_env()
print(os.environ.get("XLA_FLAGS", ""), "|", runtime.arithmetic_probe())
"""


def _probe(mode: str, xla_flags: str | None) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "EGRPO_CPU_DEVICES")}
    env["JAX_PLATFORMS"] = "cpu"
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    flags, digest = out.stdout.strip().rsplit("|", 1)
    return flags.strip(), digest.strip()


def test_the_pin_is_applied_before_jax_and_changes_the_kernels():
    flags, pinned = _probe("pin", None)
    assert flags.split() == ["--xla_cpu_enable_concurrency_optimized_scheduler=false", "--xla_cpu_max_isa=AVX2",
                             "--xla_cpu_experimental_ynn_fusion_type="]
    assert _probe("pin", None)[1] == pinned  # a process's arithmetic is reproducible
    # YNNPACK's dot fusions are XLA:CPU's default: with them off the same program gives other bits
    assert _probe("plain", None)[1] != pinned


def test_a_flag_the_user_gave_is_kept_and_the_other_is_added():
    flags, _ = _probe("pin", "--xla_cpu_max_isa=AVX --xla_force_host_platform_device_count=1")
    assert flags.split() == ["--xla_cpu_max_isa=AVX", "--xla_force_host_platform_device_count=1",
                             "--xla_cpu_enable_concurrency_optimized_scheduler=false",
                             "--xla_cpu_experimental_ynn_fusion_type="]


def test_the_memory_schedule_orders_work_without_changing_the_arithmetic():
    _, memory = _probe("pin", None)
    flags, concurrent = _probe("pin", "--xla_cpu_enable_concurrency_optimized_scheduler=true")
    assert flags.split()[0] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"  # the user's choice wins
    assert concurrent == memory


def test_machine_facts_name_the_cpu_cores_and_flags():
    m = runtime.machine_facts()
    assert m["cores"] >= 1 and isinstance(m["cpu"], str) and m["cpu"]
    assert "--xla_cpu_max_isa=AVX2" in m["xla_flags"]  # conftest pinned this process
    assert set(m["isa"]) <= {"avx2", "avx512f"}
    # the cached probe is what a fresh computation in this process gives
    assert len(m["probe"]) == 16 and m["probe"] == runtime.arithmetic_probe.__wrapped__()
