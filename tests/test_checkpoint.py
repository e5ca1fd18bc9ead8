import os

import jax
import numpy as np
import pytest
from flax import nnx

from egrpo_jax.checkpoint import Checkpointer, restore_params, rng_from_meta
from egrpo_jax.mesh import make_mesh
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.rl.learner import Learner, LossSettings, OptimSettings
from egrpo_jax.rl.batch import pack_sequences

CFG = tiny_config("qwen2", num_layers=1, vocab_size=64)


def _flat(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_save_restore_roundtrip_keep_and_partial(tmp_path):
    mesh = make_mesh(2, 2, 2)
    learner = Learner(create_model(CFG, mesh=mesh, seed=0), mesh, OptimSettings(lr=1e-2), LossSettings(kind="sft"))
    batch = pack_sequences([[1, 2, 3, 4, 5, 6]] * 4, [[0, 0, 1, 1, 1, 1]] * 4)
    ck = Checkpointer(str(tmp_path / "ck"), every=1, keep=2)
    key = jax.random.key(7)
    for step in (1, 2, 3):
        learner.train_step(batch)
        ck.save(step, learner.state, rng=key, data_state={"pos": step})
    assert ck.all_steps() == [2, 3]  # keep the last 2
    saved = _flat(learner.state)
    ck.close()

    # A partial checkpoint (an unfinished orbax temporary folder) is never read.
    junk = tmp_path / "ck" / "4.orbax-checkpoint-tmp-123"
    os.makedirs(junk / "state")
    (junk / "state" / "garbage").write_text("x")

    ck2 = Checkpointer(str(tmp_path / "ck"), every=1, keep=2)
    assert ck2.latest_step() == 3
    # restore target: shapes, dtypes and shardings only (no second model / optimizer needed)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), learner.state)
    state, meta = ck2.restore(target)
    assert meta["data"] == {"pos": 3} and meta["step"] == 3
    assert jax.random.key_data(rng_from_meta(meta)).tolist() == jax.random.key_data(key).tolist()
    for a, b in zip(_flat(state), saved):
        np.testing.assert_array_equal(a, b)
    assert [x.sharding for x in jax.tree.leaves(state)] == [x.sharding for x in jax.tree.leaves(target)]
    restored_params = _flat(state.params)
    learner.set_state(state)
    m = learner.train_step(batch)  # training continues from the restored optimizer state
    assert m["skipped"] == 0
    ck2.close()

    # Params only, into a fresh model (what `egrpo convert` exports).
    model = restore_params(str(tmp_path / "ck"), create_model(CFG, mesh=mesh, seed=5), step=3)
    for a, b in zip(_flat(nnx.state(model, nnx.Param)), restored_params):
        np.testing.assert_array_equal(a, b)


def test_restore_structure_mismatch_is_an_error(tmp_path):
    mesh = make_mesh(1, 1, 1, devices=jax.devices()[:1])
    learner = Learner(create_model(CFG, mesh=mesh), mesh, OptimSettings(), LossSettings(kind="sft"))
    ck = Checkpointer(str(tmp_path / "ck"))
    ck.save(1, learner.state)
    other = Learner(create_model(CFG, mesh=mesh), mesh, OptimSettings(clip_norm=0.0), LossSettings(kind="sft"))
    with pytest.raises(ValueError, match="structure differs"):
        ck.restore(other.state)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        Checkpointer(str(tmp_path / "empty")).restore(learner.state)
