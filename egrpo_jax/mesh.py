"""Device mesh (data, fsdp, tensor), logical-axis rules, and multi-host start-up.

Parameters and activations are annotated with *logical* axis names ("embed", "heads", ...);
`LOGICAL_RULES` maps them onto mesh axes so one model definition serves every mesh shape.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils  # a submodule: `jax.experimental.mesh_utils` needs this import
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axis (or tuple of mesh axes, or None = replicated)
LOGICAL_RULES: dict[str, str | tuple[str, ...] | None] = {
    "batch": ("data", "fsdp"),
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",  # flattened q heads * head_dim
    "kv_heads": "tensor",  # flattened kv heads * head_dim
    "mlp": "tensor",
    "norm": None,
    "layers": None,
    "cache_heads": "tensor",  # KV-cache head axis
    "seq": None,
    "head_dim": None,
    "lora_rank": None,  # a LoRA adapter's rank axis (small): its a / b shard on their other axis, like the weight
}


def resolve_axis_sizes(
    data: int = 1, fsdp: int = -1, tensor: int = 1, n_devices: int | None = None
) -> tuple[int, int, int]:
    """Resolve a (data, fsdp, tensor) request; at most one axis may be -1 ("the rest")."""
    n = jax.device_count() if n_devices is None else n_devices
    sizes = [data, fsdp, tensor]
    for name, s in zip(MESH_AXES, sizes):
        if s == 0 or s < -1:
            raise ValueError(f"mesh.{name} must be a positive integer or -1, got {s}")
    if sizes.count(-1) > 1:
        raise ValueError(f"mesh: at most one axis may be -1, got (data, fsdp, tensor) = {tuple(sizes)}")
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if n % known:
            raise ValueError(f"mesh: {n} devices are not divisible by the fixed axes product {known}")
        sizes[sizes.index(-1)] = n // known
    if math.prod(sizes) != n:
        raise ValueError(
            f"mesh: (data, fsdp, tensor) = {tuple(sizes)} uses {math.prod(sizes)} devices, but {n} are available"
        )
    return tuple(sizes)  # type: ignore[return-value]


def make_mesh(
    data: int = 1, fsdp: int = -1, tensor: int = 1, devices: Sequence[jax.Device] | None = None
) -> Mesh:
    """Build a (data, fsdp, tensor) mesh over `devices` (default: all global devices)."""
    devs = list(jax.devices() if devices is None else devices)
    shape = resolve_axis_sizes(data, fsdp, tensor, n_devices=len(devs))
    if devices is None:
        try:
            arr = mesh_utils.create_device_mesh(shape, devices=devs)
        except Exception as e:  # noqa: BLE001 - unusual topologies: plain order works, but may be slow
            log.warning("mesh: create_device_mesh(%s) failed (%s: %s); using plain device order, which may "
                        "put communicating devices far apart", shape, type(e).__name__, e)
            arr = np.asarray(devs).reshape(shape)
    else:
        arr = np.asarray(devs).reshape(shape)
    return Mesh(arr, MESH_AXES)


def single_device_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1, 1), MESH_AXES)


def logical_to_spec(names: Sequence[str | None] | None, mesh: Mesh | None = None) -> P:
    """Map logical axis names to a PartitionSpec; axes of size 1 are dropped (replicated)."""
    if names is None:
        return P()
    out = []
    for n in names:
        if n is None:
            out.append(None)
            continue
        if n not in LOGICAL_RULES:
            raise KeyError(f"unknown logical axis {n!r}; known: {sorted(LOGICAL_RULES)}")
        target = LOGICAL_RULES[n]
        if mesh is not None and target is not None:
            axes = (target,) if isinstance(target, str) else target
            axes = tuple(a for a in axes if mesh.shape[a] > 1)
            target = None if not axes else (axes[0] if len(axes) == 1 else axes)
        out.append(target)
    return P(*out)


def fit_spec(spec: P, shape: Sequence[int], mesh: Mesh) -> P:
    """Drop mesh axes that do not divide the dimension they shard (replicate instead)."""
    out = []
    for dim, target in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        if target is None:
            out.append(None)
            continue
        axes = (target,) if isinstance(target, str) else tuple(target)
        size = math.prod(mesh.shape[a] for a in axes)
        out.append(target if dim % size == 0 else None)
    return P(*out)


def named_sharding(
    names: Sequence[str | None] | None, shape: Sequence[int], mesh: Mesh
) -> NamedSharding:
    return NamedSharding(mesh, fit_spec(logical_to_spec(names, mesh), shape, mesh))


def init_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Start multi-host JAX when asked (args, or EGRPO_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID).

    On TPU pod slices `jax.distributed.initialize()` with no arguments discovers everything; set
    EGRPO_DISTRIBUTED=1 for that. Returns True when distributed mode was started.
    """
    addr = coordinator_address or os.environ.get("EGRPO_COORDINATOR")
    nproc = num_processes or _env_int("EGRPO_NUM_PROCESSES")
    pid = process_id if process_id is not None else _env_int("EGRPO_PROCESS_ID")
    if addr:
        if nproc is None or pid is None:
            raise ValueError("distributed: coordinator set but num_processes / process_id missing")
        jax.distributed.initialize(addr, num_processes=nproc, process_id=pid)
        return True
    if os.environ.get("EGRPO_DISTRIBUTED") == "1":
        jax.distributed.initialize()
        return True
    return False


def _env_int(key: str) -> int | None:
    v = os.environ.get(key)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"{key} must be an integer, got {v!r}") from None
