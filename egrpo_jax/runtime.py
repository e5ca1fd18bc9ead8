"""Process-level runtime set-up that must happen before jax is imported.

CPU test mode: `EGRPO_CPU_DEVICES=N` (or `egrpo --cpu-devices N ...`) makes XLA expose N fake
CPU devices so every sharded path (mesh, shardings, collectives) runs on a laptop or in CI.

Reproducible CPU arithmetic: XLA:CPU chooses kernels by the CPU it runs on (its code generation by
the widest vector ISA, YNNPACK's dot kernels by CPUID), and the summation order changes with them,
so one seed can train to different weights on two machines (a replicate grid's SFT start scored
37.3% test Pass@1 on a Zen 4 with AVX-512 and 40.0% on an earlier machine whose CPU was not recorded).
`pin_cpu_numerics` caps code generation at AVX2 and turns the YNNPACK fusions off. Not slower: on a
2-core Zen 3 a 16 x 768-token decoder gradient took 2.78 s pinned vs 3.27 s by default; on a 2-core
Intel Xeon with AVX-512 an RL train step of 16 x 768 tokens (bench_train) 1.99 / 1.91 s vs 1.95 / 2.05 s.
The result still depends on the number of usable cores (XLA's intra-op partition), so a 16-core
machine matches a 2-core one only under `taskset -c 0,1`.
"""

from __future__ import annotations

import functools
import os
import platform
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
    pin_cpu_numerics()
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_FLAG)]
    flags.append(f"{_FLAG}={n}")
    os.environ["XLA_FLAGS"] = " ".join(flags)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


# name -> value; a flag the user already put in XLA_FLAGS is left as given (that is the way out)
PINNED_CPU_FLAGS = {"--xla_cpu_max_isa": "AVX2", "--xla_cpu_experimental_ynn_fusion_type": ""}


def pin_cpu_numerics() -> None:
    """Pin XLA:CPU's code generation (AVX2, no YNNPACK fusions) on every x86-64 machine with AVX2, so the
    kernels do not change with the CPU's ISA. Not enough for equal training across CPU models: pinned, an
    Intel Xeon 6/207 and an AMD EPYC 26/2 give the same arithmetic_probe and different 800-step SFT starts
    (cause not found). Must run before `import jax` (once jax is imported its flags are fixed)."""
    if "jax" in sys.modules or platform.machine().lower() not in ("x86_64", "amd64"):
        return
    _add_xla_flags(PINNED_CPU_FLAGS)


# XLA:CPU's default scheduler orders a step for concurrency and keeps the activations that jax.checkpoint
# (model.remat, the attention blocks) asked it to recompute: a SmolLM2 train step on 16 x 1024 tokens
# peaked at 10.3 GB RSS with 2-row micro-batches. The memory-aware order makes recomputation pay
# (docs/real-model.md has the measurements). It orders work; it does not change the arithmetic.
MEMORY_CPU_FLAGS = {"--xla_cpu_enable_concurrency_optimized_scheduler": "false"}


def _add_xla_flags(wanted: dict[str, str]) -> None:
    flags = os.environ.get("XLA_FLAGS", "").split()
    given = {f.split("=", 1)[0] for f in flags}
    flags += [f"{k}={v}" for k, v in wanted.items() if k not in given]
    os.environ["XLA_FLAGS"] = " ".join(flags)


def schedule_for_memory() -> None:
    """XLA:CPU schedules for memory (MEMORY_CPU_FLAGS); a flag the user set in XLA_FLAGS is kept."""
    if "jax" not in sys.modules:
        _add_xla_flags(MEMORY_CPU_FLAGS)


def cpu_facts() -> dict[str, object]:
    """The CPU (model name, family, model), its vector ISA and the cores this process may use."""
    cpu, isa = platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().split("\n\n", 1)[0]
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        cpu = f"{fields.get('model name', cpu)} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"
        isa = [x for x in ("avx2", "avx512f") if x in fields.get("flags", "").split()]
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "isa": isa, "cores": cores}


def machine_facts() -> dict[str, object]:
    """What decides this process's CPU arithmetic, for a record's provenance (grid_store)."""
    return {**cpu_facts(), "xla_flags": os.environ.get("XLA_FLAGS", ""), "probe": arithmetic_probe()}


@functools.cache  # a process's arithmetic is fixed once jax has started (its flags are read then)
def arithmetic_probe() -> str:
    """16 hex digits of a SHA-256 over the bits of a jitted matmul + softmax chain and a gradient with row
    and column reductions on fixed inputs (imports jax; half a second). Two processes whose probes differ
    do not train one seed to the same weights, so a grid recorded elsewhere is refused in seconds, not
    after its SFT start is trained again (grid_store). Equal probes do not promise equal weights
    (pin_cpu_numerics): grid_store.sft_loss_check compares the first SFT steps too."""
    import hashlib  # noqa: PLC0415

    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    n, d = 1024, 768  # big enough that XLA splits the work over the cores (1 and 2 cores differ), as in training
    x = jnp.asarray(np.random.default_rng(0).standard_normal((n, d)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(1).standard_normal((d, d)) / np.sqrt(d), jnp.float32)

    def f(x, w):
        for _ in range(4):
            x = jax.nn.softmax(x @ w, -1) * d
        return jax.grad(lambda w: jnp.sum(jnp.tanh(x @ w)) + jnp.sum(jnp.log(jnp.sum(jnp.exp(x @ w / d), 0))))(w)

    return hashlib.sha256(np.asarray(jax.jit(f)(x, w)).tobytes()).hexdigest()[:16]


def apply_env() -> None:
    """Pin the CPU arithmetic and honour EGRPO_CPU_DEVICES if set (used by the CLI and the test suite)."""
    schedule_for_memory()
    n = os.environ.get("EGRPO_CPU_DEVICES")
    if not n:
        pin_cpu_numerics()  # set_cpu_devices pins too
    else:
        try:
            count = int(n)
        except ValueError:
            raise ValueError(f"EGRPO_CPU_DEVICES must be an integer, got {n!r}") from None
        set_cpu_devices(count)
