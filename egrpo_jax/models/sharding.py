"""Create and place decoder parameters straight into their mesh shardings."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from egrpo_jax.mesh import named_sharding, single_device_mesh
from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.decoder import Decoder


def abstract_model(cfg: ModelConfig) -> Decoder:
    return nnx.eval_shape(lambda: Decoder(cfg, rngs=nnx.Rngs(0)))


def state_shardings(state: nnx.State, mesh: Mesh) -> nnx.State:
    """A NamedSharding for every variable of `state`, from its `axes` metadata."""

    def one(var):
        axes = var.get_metadata().get("axes")
        return var.replace(named_sharding(axes, var.get_value().shape, mesh))

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def abstract_sharded_model(cfg: ModelConfig, mesh: Mesh) -> Decoder:
    """The decoder create_model / load_policy would place on `mesh`, its parameters jax.ShapeDtypeStructs
    with those NamedShardings: nothing is allocated, and a step built on it compiles ahead of time as the
    real one would (rl.memory_plan)."""
    graphdef, abs_state = nnx.split(abstract_model(cfg))
    shardings = state_shardings(abs_state, mesh)
    return nnx.merge(graphdef, jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abs_state, shardings))


def is_abstract(tree) -> bool:
    """Whether `tree` (parameters, a model's state) holds jax.ShapeDtypeStructs, not arrays."""
    return any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(tree))


def create_model(cfg: ModelConfig, *, mesh: Mesh | None = None, seed: int = 0) -> Decoder:
    """A randomly initialised decoder whose parameters are created already sharded."""
    mesh = mesh or single_device_mesh()
    graphdef, abs_state = nnx.split(abstract_model(cfg))
    shardings = state_shardings(abs_state, mesh)

    @jax.jit
    def init():
        return nnx.state(Decoder(cfg, rngs=nnx.Rngs(seed)))

    init = jax.jit(init.__wrapped__, out_shardings=shardings)
    return nnx.merge(graphdef, init())


def model_from_arrays(
    cfg: ModelConfig,
    get_array: Callable[[tuple, tuple[int, ...]], np.ndarray],
    *,
    mesh: Mesh | None = None,
) -> Decoder:
    """Build a decoder from host arrays without a full copy per device.

    `get_array(path, shape)` returns the full NumPy array of the parameter at `path` (an nnx state
    path such as ("layers", 3, "attn", "wq", ...)); each device receives only its own shard.
    """
    mesh = mesh or single_device_mesh()
    graphdef, abs_state = nnx.split(abstract_model(cfg))
    shardings = state_shardings(abs_state, mesh)
    flat_abs = dict(nnx.to_flat_state(abs_state))
    flat_sh = dict(nnx.to_flat_state(shardings))
    leaves = []
    for path, var in flat_abs.items():
        shape = tuple(var.get_value().shape)
        arr = get_array(path, shape)
        if tuple(arr.shape) != shape:
            raise ValueError(f"parameter {'.'.join(map(str, path))}: shape {arr.shape}, expected {shape}")
        arr = np.asarray(arr, dtype=var.get_value().dtype)
        sh = flat_sh[path].get_value()
        leaves.append((path, var.replace(jax.make_array_from_callback(shape, sh, lambda idx, a=arr: a[idx]))))
    state = nnx.from_flat_state(leaves)
    return nnx.merge(graphdef, state)


def param_specs(model: Decoder) -> dict[str, object]:
    """path -> PartitionSpec of every parameter (for tests and logs)."""
    flat = nnx.to_flat_state(nnx.state(model))
    return {".".join(map(str, p)): v.get_value().sharding.spec for p, v in flat}
