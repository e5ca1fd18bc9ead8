"""Every TPU config validates for every slice it names, and its mesh fits the slice's chips."""

import importlib.util
import math
import os
import sys

import pytest

from egrpo_jax.config import ConfigError, load_config
from egrpo_jax.mesh import resolve_axis_sizes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "configs"))
TPU = importlib.import_module("tpu_common")
SLICES = TPU.SLICES
CHIPS = {s: TPU.slice_chips(s) for s in SLICES}


@pytest.mark.parametrize("model", ["qwen2_5_7b_tpu.py", "qwen3_8b_tpu.py"])
@pytest.mark.parametrize("slice_name", sorted(SLICES))
def test_tpu_config_validates_and_fits(model, slice_name):
    cfg = load_config(os.path.join(ROOT, "configs", f"{model}:{slice_name}"))
    assert cfg.model.dtype == "bfloat16" and cfg.model.remat
    assert cfg.rl.group_size == 8 and cfg.data.batch_size == 64 and cfg.optim.lr == 2e-6
    m = cfg.mesh
    assert resolve_axis_sizes(m.data, m.fsdp, m.tensor, n_devices=CHIPS[slice_name]) == (m.data, m.fsdp, m.tensor)
    # micro-batches split the B*G rollouts evenly over the data-parallel rows
    assert (cfg.data.batch_size * cfg.rl.group_size) % (cfg.optim.microbatches * m.data * m.fsdp) == 0


def test_unknown_slice_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"qwen3_8b_tpu.py:v9-1: unknown TPU slice 'v9-1'"):
        load_config(os.path.join(ROOT, "configs", "qwen3_8b_tpu.py:v9-1"))


def test_slice_facts():
    assert (TPU.slice_chips("v5p-16"), TPU.slice_chips("v5litepod-16"), TPU.slice_chips("v4-128")) == (8, 16, 64)
    assert {TPU.slice_hbm_gib(s) for s in ("v4-32", "v5litepod-64", "v5p-64", "v6e-8")} == {32, 16, 95}
    with pytest.raises(ValueError, match="TPU slice 'v5e-8'"):
        TPU.slice_chips("v5e-8")


@pytest.mark.parametrize("slice_name", sorted(SLICES))
def test_every_slice_has_its_topology(slice_name):
    generation, _, shape = TPU.TOPOLOGIES[slice_name].partition(":")
    assert generation == TPU.TPU_CHIPS[slice_name.rpartition("-")[0]][0]
    assert math.prod(int(x) for x in shape.split("x")) == CHIPS[slice_name]
