"""CPU test mode: 8 fake XLA CPU devices, set before anything imports jax."""

import os

os.environ["EGRPO_CPU_DEVICES"] = os.environ.get("EGRPO_CPU_DEVICES", "8")
from egrpo_jax import runtime  # noqa: E402

runtime.apply_env()

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
