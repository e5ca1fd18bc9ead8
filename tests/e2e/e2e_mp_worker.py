"""Worker for test_e2e_multiprocess: `egrpo train` in one jax.distributed process (or alone).

argv: process_id (-1 = single process with 4 CPU devices) port config_file log_dir.
`egrpo train` starts jax.distributed itself from EGRPO_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID.
"""

import os
import sys

pid, port, config, log_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=" + ("2" if pid >= 0 else "4")
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.pop("EGRPO_CPU_DEVICES", None)
if pid >= 0:
    os.environ.update(EGRPO_COORDINATOR=f"127.0.0.1:{port}", EGRPO_NUM_PROCESSES="2", EGRPO_PROCESS_ID=str(pid))
from egrpo_jax import cli

rc = cli.main(["train", "--config", config, f"--config.logging.dir={log_dir}"])
import jax  # noqa: E402  (imported by the command; read what it ran on)

print(f"PROCESSES={jax.process_count()} GLOBAL_DEVICES={jax.device_count()}", flush=True)
sys.exit(rc)
