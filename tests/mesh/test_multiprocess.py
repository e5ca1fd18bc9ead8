"""Two local JAX processes (2 CPU devices each, gloo) run a sharded forward on a global 4-device mesh."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from mesh_helpers import CFG, TOKENS, host_array
from procs import free_port, wait_all

from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.models.sharding import model_from_arrays

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mp_worker.py")
TIMEOUT_S = 180


def test_two_processes_match_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("EGRPO_CPU_DEVICES", "XLA_FLAGS")}
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    port = free_port()
    outs = [tmp_path / f"logits{i}.npy" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, WORKER, str(i), str(port), str(outs[i])], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    wait_all(procs, TIMEOUT_S, "multi-process workers")

    model = model_from_arrays(CFG, host_array, mesh=single_device_mesh())
    ref = np.asarray(nnx.jit(lambda m, t: m(t))(model, jnp.asarray(TOKENS)))
    for out in outs:
        got = np.load(out)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-5
    assert jax.process_count() == 1  # the test process itself stayed single-process
