import asyncio
import gc
import json
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from egrpo_jax.checkpoint import CheckpointError, Checkpointer, restore_params, rng_from_meta
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


def _corrupt(step_dir, how):
    files = [p for p in step_dir.rglob("*") if p.is_file()]
    if how == "truncated data":
        data = max((p for p in files if "state" in p.parts), key=lambda p: p.stat().st_size)
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    else:  # emptied meta
        for p in files:
            if "meta" in p.parts:
                p.write_text("")


@pytest.mark.parametrize("how", ["truncated data", "emptied meta"])
def test_resume_skips_an_unreadable_newest_step_with_one_warning(tmp_path, caplog, how):
    state = {"w": jax.numpy.arange(5000, dtype=jax.numpy.float32), "b": jax.numpy.ones(3)}
    ck = Checkpointer(str(tmp_path / "ck"), every=1, keep=5)
    for step in (1, 2, 3):
        ck.save(step, jax.tree.map(lambda x, s=step: x * s, state), data_state={"pos": step})
    ck.close()
    _corrupt(tmp_path / "ck" / "3", how)

    ck = Checkpointer(str(tmp_path / "ck"), every=1, keep=5)
    with caplog.at_level("WARNING", logger="egrpo_jax.checkpoint"):
        restored, meta = ck.restore(state)
    assert meta["step"] == 2 and meta["data"] == {"pos": 2}
    np.testing.assert_array_equal(restored["w"], np.arange(5000) * 2)
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith(f"checkpoint.dir {tmp_path / 'ck'}: skipped unreadable step 3 (") and "\n" not in msg
    assert msg.endswith("(moved to <step>.unreadable); using step 2")
    assert (tmp_path / "ck" / "3.unreadable").is_dir()  # kept for inspection, out of the way
    ck.save(3, state, data_state={"pos": 3})  # the resumed run writes step 3 again
    ck.close()
    assert Checkpointer(str(tmp_path / "ck")).all_steps() == [1, 2, 3]


def _abandon_a_failed_gather(err):
    """What orbax leaves when one of its parallel reads fails: a gather future whose error nobody
    retrieves; asyncio logs it ('_GatheringFuture exception was never retrieved') when collected."""
    async def fail():
        raise err

    async def main():
        asyncio.gather(fail())
        await asyncio.sleep(0.01)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()
    gc.collect()


def test_an_abandoned_gather_of_a_failed_orbax_read_is_not_logged_again(tmp_path, caplog):
    # CI saw this copy of a truncated step's read error (a page of TensorStore spec, naming the
    # checkpoint folder but no orbax file) beside restore's one-line warning.
    try:
        ocp.StandardCheckpointer().restore(tmp_path / "missing")
    except Exception as e:  # noqa: BLE001 - whatever orbax raises, from inside orbax
        orbax_error = e
    with caplog.at_level("ERROR", logger="asyncio"):
        _abandon_a_failed_gather(orbax_error)
        _abandon_a_failed_gather(ValueError("raised elsewhere"))
    logged = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(logged) == 1 and "_GatheringFuture exception was never retrieved" in logged[0]
    assert "raised elsewhere" in logged[0]  # anyone else's lost error is still reported


def _abandon_a_failed_future(err):
    """What TensorStore leaves after one of orbax's writes fails: a plain future, completed from C++
    (no traceback), whose error nobody retrieves ('Future exception was never retrieved')."""
    loop = asyncio.new_event_loop()
    loop.create_future().set_exception(err)
    loop.close()
    gc.collect()


def test_copies_of_a_failed_save_left_in_futures_are_not_logged_again(tmp_path, caplog):
    # CI saw one such future per array beside `egrpo sft`'s one-line 'saving step 1 failed'.
    ck = Checkpointer(str(tmp_path / "ck"))
    inside = f'Error writing "a000007/0.0" in OCDBT database at local file "{tmp_path}/ck/1.orbax-checkpoint-tmp/d/x"'

    def fail(*_, **__):
        raise ValueError(f"OUT_OF_RANGE: {inside}: File too large [os_error_code='27']")

    ck.manager.save = fail
    with pytest.raises(CheckpointError, match="saving step 1 failed: File too large"):
        ck.save(1, {"w": jax.numpy.ones(4)})
    ck.close()
    with caplog.at_level("ERROR", logger="asyncio"):
        _abandon_a_failed_future(ValueError(f"OUT_OF_RANGE: {inside}"))
        _abandon_a_failed_future(ValueError(f'Error writing in "{tmp_path}/other/1/d/x"'))
        _abandon_a_failed_future(ValueError(f'Error writing in "{tmp_path}/ck-b/1/d/x"'))  # a sibling, not inside
    logged = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(logged) == 2 and all("Future exception was never retrieved" in m for m in logged)
    assert "other/1" in logged[0] and "ck-b/1" in logged[1]  # anyone else's lost error is still reported


def test_no_readable_step_is_one_line(tmp_path):
    state = {"w": jax.numpy.ones(100)}
    ck = Checkpointer(str(tmp_path / "ck"))
    ck.save(1, state)
    ck.close()
    _corrupt(tmp_path / "ck" / "1", "emptied meta")
    with pytest.raises(CheckpointError, match=r"checkpoint.dir .*/ck: no readable step; unreadable: 1 \(") as e:
        Checkpointer(str(tmp_path / "ck")).restore(state)
    assert "\n" not in str(e.value)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sft_config(tmp_path, steps, every):
    (tmp_path / "demos.jsonl").write_text(json.dumps({"question": "Q?", "segments": [
        {"role": "model", "text": "<think>x</think>\n<answer>A</answer>"}]}) + "\n")
    cfg = tmp_path / "c.py"
    cfg.write_text(f"""from egrpo_jax.config import default_config
def get_config():
    c = default_config()
    c.model.tokenizer = "byte"
    c.model.tiny.num_layers = 1
    c.data.demos = "{tmp_path}/demos.jsonl"
    c.data.batch_size = 2
    c.agent.prompt_style = "short"
    c.train.steps = {steps}
    c.train.max_seq_len = 512  # the demo (439 byte tokens) fits: no truncation warning
    c.checkpoint.dir = "{tmp_path}/ckpt"
    c.checkpoint.every = {every}
    c.logging.dir = "{tmp_path}/logs"
    c.logging.progress = False
    return c
""")
    return cfg


def _egrpo(*args):
    return subprocess.run([sys.executable, "-m", "egrpo_jax.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, EGRPO_CPU_DEVICES="1"), timeout=600)


def test_sft_resume_over_a_truncated_newest_step_warns_once_and_finishes(tmp_path):
    cfg = _sft_config(tmp_path, steps=4, every=2)
    assert _egrpo("sft", "--config", str(cfg)).returncode == 0
    _corrupt(tmp_path / "ckpt" / "4", "truncated data")
    p = _egrpo("sft", "--config", str(cfg), "--resume", "--config.train.steps=6")
    assert p.returncode == 0, p.stderr[-3000:]
    warned = [line for line in p.stderr.splitlines() if "ckpt" in line]
    assert len(warned) == 1 and f"{tmp_path}/ckpt: skipped unreadable step 4 (" in warned[0], p.stderr[-3000:]
    assert warned[0].endswith("; using step 2") and "Traceback" not in p.stderr
    # the steps, plus what the folder says about its policy (policy.json, the byte tokenizer marker)
    assert sorted(x.name for x in (tmp_path / "ckpt").iterdir()) == ["2", "4", "4.unreadable", "6", "policy.json",
                                                                   "tokenizer"]
    steps = [json.loads(line)["step"] for line in (tmp_path / "logs" / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_full_disk_during_save_ends_with_one_line_naming_path_and_cause(tmp_path):
    """`egrpo sft` whose checkpoint write fails (RLIMIT_FSIZE: 'File too large', as ENOSPC would)."""
    cfg = _sft_config(tmp_path, steps=2, every=1)
    # the child limits its own file size (no preexec_fn: forking a threaded JAX process can deadlock)
    launch = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG, not a kill\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
              "from egrpo_jax.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    p = subprocess.run([sys.executable, "-c", launch, "sft", "--config", str(cfg)], cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT, EGRPO_CPU_DEVICES="1"), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 1, p.stderr[-2000:]
    assert p.stderr.strip().splitlines() == [
        f"egrpo sft: checkpoint.dir {tmp_path}/ckpt: saving step 1 failed: File too large"], p.stderr[-3000:]


def test_a_disk_too_full_for_the_state_is_refused_before_writing(tmp_path, monkeypatch):
    import collections
    import shutil

    ck = Checkpointer(str(tmp_path / "ck"))
    state = {"w": jax.numpy.ones(1 << 20)}  # 4 MiB
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(CheckpointError, match=rf"checkpoint.dir {tmp_path}/ck: saving step 1 needs about 4.0 MiB, "
                                              r"the disk has 1.0 MiB free$"):
        ck.save(1, state)
    assert ck.all_steps() == []
