"""Create and place decoder parameters straight into their mesh shardings."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from egrpo_jax.mesh import named_sharding, single_device_mesh
from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.decoder import Decoder, adapter_a


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
    seed: int = 0,
) -> Decoder:
    """Build a decoder from host arrays without a full copy per device.

    `get_array(path, shape)` returns the full NumPy array of the parameter at `path` (an nnx state
    path such as ("layers", 3, "attn", "wq", ...)); each device receives only its own shard. LoRA
    adapters (cfg.lora_rank > 0) are not read: they start fresh (fresh_adapter), drawn from `seed`.
    """
    mesh = mesh or single_device_mesh()
    graphdef, abs_state = nnx.split(abstract_model(cfg))
    shardings = state_shardings(abs_state, mesh)
    flat_abs = dict(nnx.to_flat_state(abs_state))
    flat_sh = dict(nnx.to_flat_state(shardings))
    leaves = []
    for i, (path, var) in enumerate(flat_abs.items()):
        if isinstance(var, nnx.LoRAParam):  # not in the file: fresh, a from fold_in(key(seed), i)
            leaves.append((path, fresh_adapter(var, jax.random.fold_in(jax.random.key(seed), i),
                                               flat_sh[path].get_value())))
            continue
        shape = tuple(var.get_value().shape)
        arr = get_array(path, shape)
        if tuple(arr.shape) != shape:
            raise ValueError(f"parameter {'.'.join(map(str, path))}: shape {arr.shape}, expected {shape}")
        arr = np.asarray(arr, dtype=var.get_value().dtype)
        sh = flat_sh[path].get_value()
        leaves.append((path, var.replace(jax.make_array_from_callback(shape, sh, lambda idx, a=arr: a[idx]))))
    state = nnx.from_flat_state(leaves)
    return nnx.merge(graphdef, state)


def fresh_adapter(var: nnx.LoRAParam, key: jax.Array, sharding) -> nnx.LoRAParam:
    """A fresh adapter variable (`var` abstract) placed with `sharding`: a drawn from `key`, b zeros.
    (Not create_model's draws: tracing the whole init for them took minutes to compile on 30 layers.)"""
    spec = var.get_value()
    if var.get_metadata()["axes"][-1] == "lora_rank":  # a [in, r]
        value = adapter_a(key, spec.shape, spec.dtype)
    else:
        value = jnp.zeros(spec.shape, spec.dtype)
    return var.replace(jax.device_put(value, sharding))


def param_specs(model: Decoder) -> dict[str, object]:
    """path -> PartitionSpec of every parameter (for tests and logs)."""
    flat = nnx.to_flat_state(nnx.state(model))
    return {".".join(map(str, p)): v.get_value().sharding.spec for p, v in flat}
