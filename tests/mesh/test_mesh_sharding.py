"""The same forward pass on a 1-device mesh and on the (2, 2, 2) mesh; parameter shardings."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec as P
from mesh_helpers import CFG, TOKENS, host_array

from egrpo_jax.mesh import make_mesh, single_device_mesh
from egrpo_jax.models.kv_cache import init_cache
from egrpo_jax.models.sharding import model_from_arrays, param_specs


def _forward(mesh):
    model = model_from_arrays(CFG, host_array, mesh=mesh)
    with jax.set_mesh(mesh):
        full = nnx.jit(lambda m, t: m(t))(model, jnp.asarray(TOKENS))
        # cached path: a 5-token prefill, then 3 single-token steps
        cache = init_cache(CFG, TOKENS.shape[0], 16, mesh=mesh)
        step = nnx.jit(lambda m, t, p, c: m(t, p, cache=c))
        pos = jnp.broadcast_to(jnp.arange(8, dtype=jnp.int32), TOKENS.shape)
        chunks = [step(model, TOKENS[:, :5], pos[:, :5], cache)]
        for i in range(5, 8):
            chunks.append(step(model, TOKENS[:, i:i + 1], pos[:, i:i + 1], chunks[-1][1]))
        cached = np.concatenate([np.asarray(c[0]) for c in chunks], axis=1)
    return model, np.asarray(full), cached, chunks[-1][1]


def test_sharded_forward_matches_single_device():
    assert jax.device_count() == 8
    _, ref, ref_cached, _ = _forward(single_device_mesh())
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    model, got, got_cached, cache = _forward(mesh)
    assert np.abs(got - ref).max() <= 1e-5
    assert np.abs(got_cached - ref_cached).max() <= 1e-5
    # the cached path reproduces the full forward too
    assert np.abs(ref_cached - ref).max() <= 1e-5

    specs = param_specs(model)
    assert specs["embed"] == P("tensor", "fsdp")
    assert specs["layers.0.attn.wq"] == P("fsdp", "tensor")
    assert specs["layers.1.attn.wk"] == P("fsdp", "tensor")
    assert specs["layers.0.attn.wo"] == P("tensor", "fsdp")
    assert specs["layers.0.attn.bq"] == P("tensor")
    assert specs["layers.0.mlp.w_down"] == P("tensor", "fsdp")
    assert specs["layers.0.attn_norm.scale"] in (P(), P(None))  # replicated
    assert specs["lm_head"] == P("fsdp", "tensor")
    wq = nnx.state(model)["layers"][0]["attn"]["wq"].get_value()
    assert wq.sharding.mesh.shape == {"data": 2, "fsdp": 2, "tensor": 2}
    # each device holds a quarter of wq (fsdp x tensor), replicated over data
    assert {s.data.shape for s in wq.addressable_shards} == {(CFG.hidden_size // 2, CFG.num_heads * CFG.head_dim // 2)}
    assert cache.k[0].sharding.spec == P(("data", "fsdp"), "tensor")


def test_axes_that_do_not_divide_are_replicated():
    mesh = make_mesh(data=1, fsdp=8, tensor=1)
    cfg = CFG.replace(vocab_size=100)  # 100 % 8 != 0 on the vocab axis; embed (64) still divides
    model = model_from_arrays(cfg, host_array, mesh=mesh)
    specs = param_specs(model)
    assert specs["embed"] == P(None, "fsdp")
    assert specs["lm_head"] == P("fsdp", None)


def test_device_order_fallback_is_a_warning(monkeypatch, caplog):
    import egrpo_jax.mesh as M

    with caplog.at_level("WARNING", logger="egrpo_jax.mesh"):
        M.make_mesh(2, 2, 2)
    assert not caplog.records  # the topology-aware order works on the fake CPU devices

    def broken(shape, devices):
        raise AssertionError("unsupported topology")

    monkeypatch.setattr(M.mesh_utils, "create_device_mesh", broken)
    with caplog.at_level("WARNING", logger="egrpo_jax.mesh"):
        mesh = M.make_mesh(2, 2, 2)
    assert mesh.devices.flatten().tolist() == jax.devices()
    (rec,) = [r for r in caplog.records if r.name == "egrpo_jax.mesh"]
    assert "create_device_mesh((2, 2, 2)) failed (AssertionError: unsupported topology)" in rec.getMessage()
