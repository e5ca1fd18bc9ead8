"""One process of the two-process test: sharded forward on a global (1, 2, 2) mesh, logits to a .npy file.

usage: python mp_worker.py PROCESS_ID PORT OUT.npy   (XLA_FLAGS must give 2 CPU devices)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    pid, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    import jax
    import numpy as np
    from flax import nnx
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P
    from mesh_helpers import CFG, TOKENS, host_array

    from egrpo_jax.mesh import init_distributed, make_mesh
    from egrpo_jax.models.sharding import model_from_arrays, param_specs

    assert init_distributed(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
    mesh = make_mesh(data=1, fsdp=2, tensor=2)
    model = model_from_arrays(CFG, host_array, mesh=mesh)
    assert param_specs(model)["layers.0.attn.wq"] == P("fsdp", "tensor")
    tokens = jax.make_array_from_callback(TOKENS.shape, NamedSharding(mesh, P()), lambda idx: TOKENS[idx])
    with jax.set_mesh(mesh):
        logits = nnx.jit(lambda m, t: m(t))(model, tokens)
    np.save(out, np.asarray(multihost_utils.process_allgather(logits, tiled=True)))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
