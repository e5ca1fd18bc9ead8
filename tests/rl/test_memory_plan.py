"""`egrpo plan-memory` on a tiny model over the 8 fake CPU devices (conftest): the real train step and engine
calls compile over abstract parameters, XLA's sizes come back per device, and the verdict follows them."""

import dataclasses

import jax
import pytest

from egrpo_jax import cli
from egrpo_jax.commands.plan_memory import with_resident_cache
from egrpo_jax.config import load_config
from egrpo_jax.mesh import make_mesh
from egrpo_jax.models.sharding import abstract_sharded_model, create_model
from egrpo_jax.rl.learner import Learner
from egrpo_jax.rl.memory_plan import (STEPS, StepMemory, _refusal, extrapolate, plan_at_depths, plan_memory,
                                      policy_config)
from egrpo_jax.rl.setup import loss_settings, optim_settings

# 8 rollouts of 64 tokens in 2 micro-batches; 1 layer; mesh data x fsdp x tensor = 1 x 4 x 2
TINY = ["mesh.data=1", "mesh.fsdp=4", "mesh.tensor=2", "data.batch_size=2", "rl.group_size=4",
        "optim.microbatches=2", "agent.max_total_tokens=64", "agent.max_turn_tokens=16", "model.tiny.num_layers=1"]


def _cfg(*extra):
    return load_config(None, [*TINY, *extra])


@pytest.fixture(scope="module")
def tiny_plan():
    cfg = _cfg()
    return plan_memory(cfg, policy_config(cfg), make_mesh(1, 4, 2))


def test_every_call_compiles_to_positive_per_device_sizes(tiny_plan):
    assert [m.step for m in tiny_plan] == list(STEPS)
    for m in tiny_plan:
        assert m.argument > 0 and m.temp > 0 and m.total > 0
        # the train state / KV cache is donated: its outputs reuse the argument buffers
        assert 0 < m.alias <= min(m.argument, m.output)
        assert m.total == m.argument + m.output - m.alias + m.temp + m.code


def test_abstract_learner_has_the_real_learners_shardings():
    cfg = _cfg()
    mesh = make_mesh(1, 4, 2)
    model_cfg = policy_config(cfg)

    def learner(model):
        return Learner(model, mesh, optim_settings(cfg), loss_settings(cfg, "rl"), microbatches=2)

    real, abstract = learner(create_model(model_cfg, mesh=mesh)), learner(abstract_sharded_model(model_cfg, mesh))
    assert abstract.abstract and not real.abstract
    assert jax.tree.leaves(abstract.state_shardings) == jax.tree.leaves(real.state_shardings)
    # Adam's two moments are sharded as the parameters are, not replicated on every device
    def sharded(tree):
        return sum(not s.is_fully_replicated for s in jax.tree.leaves(tree))
    assert sharded(real.state_shardings.opt_state) == 2 * sharded(real.state_shardings.params) > 0
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(abstract.state))


def test_more_fsdp_shards_hold_less_per_device():
    # the same 8 devices as 4 data-parallel replicas x 2 parameter shards, or as 8 parameter shards
    mems = {}
    for data, fsdp in ((4, 2), (1, 8)):
        cfg = _cfg(f"mesh.data={data}", f"mesh.fsdp={fsdp}", "mesh.tensor=1", "optim.microbatches=1")
        mems[fsdp], = plan_memory(cfg, policy_config(cfg), make_mesh(data, fsdp, 1), ["train"])
    assert mems[8].argument < mems[2].argument


def test_the_command_says_whether_it_fits(tiny_plan, capsys):
    sizes = {m.step: m.total for m in tiny_plan}
    assert sizes["decode"] < sizes["train"]
    hbm_gib = (sizes["decode"] + sizes["train"]) / 2 / 2**30  # between the two: decode fits, train does not
    args = ["plan-memory", "--steps", "train,decode", "--hbm-gib", repr(hbm_gib), *(f"--config.{o}" for o in TINY)]
    assert cli.main(args) == 3
    lines = capsys.readouterr().out.splitlines()
    step = lines[0].split(" | ").index("step")
    rows = {line.split(" | ")[step]: line for line in lines[2:]}
    assert "DOES NOT FIT" in rows["train"] and "| FITS |" in rows["decode"]
    assert "DOES NOT FIT" in rows["train+cache"]  # the train step beside the engine's resident KV cache


def test_the_train_step_is_planned_beside_the_resident_kv_cache():
    base = {"config": "c.py", "slice": "s", "target": "cpu", "mesh": "1x4x2", "layers": "1", "hbm": 100}
    rows = [dict(base, step="train", argument=10, total=60, fits=True, compile_s=1.0),
            dict(base, step="decode", argument=30, alias=25, total=40, fits=True, compile_s=1.0)]
    steps = with_resident_cache(rows)
    assert [r["step"] for r in steps] == ["train", "train+cache", "decode"]
    assert (steps[1]["argument"], steps[1]["total"], steps[1]["fits"]) == (35, 85, True)
    assert not with_resident_cache([rows[0], dict(rows[1], alias=45)])[1]["fits"]


def test_the_command_refuses_a_config_without_hbm_in_one_line(capsys):
    assert cli.main(["plan-memory", *(f"--config.{o}" for o in TINY)]) == 2
    assert "--hbm-gib: needed" in capsys.readouterr().err


def test_only_the_train_step_is_extrapolated_from_fewer_layers():
    cfg = _cfg("model.tiny.num_layers=3", "optim.microbatches=1")
    train, decode = plan_at_depths(cfg, policy_config(cfg), make_mesh(1, 4, 2), ["train", "decode"], (1, 2))
    assert train.depths == (1, 2) and decode.depths == ()
    assert train.argument > 0 and decode.alias > 0


def _mem(step="train", **sizes):
    return StepMemory(step, **{k: sizes.get(k, 0) for k in ("argument", "output", "alias", "temp", "code")},
                      compile_s=1.0)


def test_extrapolation_is_linear_in_layers_and_checked_on_a_third_depth():
    line = {d: _mem(argument=100 + 10 * d, temp=100_000 + 700 * d) for d in (2, 4, 6)}
    at28 = extrapolate(line, 28)
    assert (at28.argument, at28.temp, at28.compile_s) == (380, 119_600, 3.0)
    # temporaries may sit a little off the line (XLA packs their heap anew), arguments may not
    assert extrapolate({**line, 6: _mem(argument=160, temp=104_300)}, 28).temp == 119_600
    with pytest.raises(ValueError, match="train temp bytes are not linear in layers"):
        extrapolate({**line, 6: _mem(argument=160, temp=110_000)}, 28)
    with pytest.raises(ValueError, match="train argument bytes are not linear in layers"):
        extrapolate({**line, 6: _mem(argument=161, temp=104_200)}, 28)


def test_tpu_target_needs_a_slice_in_one_line(capsys):
    assert cli.main(["plan-memory", "--target", "tpu", "--hbm-gib", "16", *(f"--config.{o}" for o in TINY)]) == 2
    assert "--target tpu: --config (built-in) names no TPU slice" in capsys.readouterr().err


def test_the_tpu_compilers_out_of_memory_refusal_is_a_verdict():
    oom = RuntimeError("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
                       "temporaries (415.79G) exceeds available HBM (95.74G).")
    m = _refusal("train", oom)
    assert m.refused and m.temp == int(415.79 * 2**30) and not m.fits(1 << 50)
    assert extrapolate({2: m, 4: dataclasses.replace(m, temp=2 * m.temp)}, 28).refused
    with pytest.raises(ValueError, match="something else"):
        _refusal("train", ValueError("something else"))
