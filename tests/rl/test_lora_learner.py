"""The learner with LoRA adapters: only they train (the base stays bit-identical, the optimizer holds
only them), sharded steps equal the single-device step, the KL reference is the base (adapters off,
no copy of the base), and the rollout engine samples from base + the current adapters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from egrpo_jax.mesh import make_mesh, single_device_mesh
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.lora import BASE
from egrpo_jax.models.sharding import create_model
from egrpo_jax.rl.batch import TrainBatch, pack_sequences
from egrpo_jax.rl.learner import Learner, LossSettings, OptimSettings
from egrpo_jax.rl.logprobs import token_logprobs, trained_window
from egrpo_jax.sampling.engine import Engine

CFG = tiny_config("qwen2", num_layers=1, lora_rank=4, lora_alpha=8.0)
PLAIN = CFG.replace(lora_rank=0)


def _flat(model, what):
    return {".".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, what))}


def _sft_batch(rows=4, length=12, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(0, CFG.vocab_size, length).tolist() for _ in range(rows)]
    return pack_sequences(seqs, [[0] * 5 + [1] * (length - 5)] * rows)


def _rl_batch(rows=4, length=16, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, CFG.vocab_size, (rows, length)).astype(np.int32)
    mask = np.zeros((rows, length), np.float32)
    mask[:, 6:] = 1
    old = np.where(mask > 0, rng.normal(-5.5, 0.2, (rows, length)), 0).astype(np.float32)
    return TrainBatch(tokens, mask, old, rng.normal(0, 1, rows).astype(np.float32), rows)


@pytest.fixture(scope="module")
def sft_run():
    """Eight LoRA SFT steps on one device: (losses, base before, learner)."""
    mesh = single_device_mesh()
    learner = Learner(create_model(CFG, mesh=mesh, seed=0), mesh, OptimSettings(lr=1e-2), LossSettings(kind="sft"))
    before = _flat(learner.model, BASE)
    losses = [learner.train_step(_sft_batch())["loss"] for _ in range(8)]
    return losses, before, learner


def test_lora_sft_trains_only_the_adapters(sft_run):
    losses, before, learner = sft_run
    assert losses[-1] < losses[0] - 0.3
    after = _flat(learner.model, BASE)
    assert after.keys() == before.keys() and len(after) > 0
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)  # the frozen base, bit for bit
    adapters = _flat(learner.model, nnx.LoRAParam)
    assert any(np.any(v != 0) for k, v in adapters.items() if k.endswith(".b"))  # the adapters moved
    # the train state holds the adapters only; Adam's two moments mirror them (plus scalar counts)
    trained = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(learner.state.params)}
    assert trained == set(adapters)
    n_adapter = sum(v.size for v in adapters.values())
    opt = [x for x in jax.tree.leaves(learner.state.opt_state) if x.ndim > 0]
    assert sum(x.size for x in opt) == 2 * n_adapter
    assert all(x.shape in {v.shape for v in adapters.values()} for x in opt)
    # the base is not duplicated into the train state: it stays in the non-trained part
    assert {".".join(map(str, p)) for p, _ in nnx.to_flat_state(learner.rest)} == set(before)


def test_a_sharded_lora_step_equals_the_single_device_step(sft_run):
    losses, _, single = sft_run
    mesh = make_mesh(2, 2, 2)  # data, fsdp and tensor all > 1 on the 8 test devices
    learner = Learner(create_model(CFG, mesh=mesh, seed=0), mesh, OptimSettings(lr=1e-2), LossSettings(kind="sft"))
    first = learner.train_step(_sft_batch())
    assert first["loss"] == pytest.approx(losses[0], rel=1e-5)
    second = learner.train_step(_sft_batch())
    assert second["loss"] == pytest.approx(losses[1], rel=1e-5)
    fresh = Learner(create_model(CFG, mesh=single_device_mesh(), seed=0), single_device_mesh(), OptimSettings(lr=1e-2),
                    LossSettings(kind="sft"))
    fresh.train_step(_sft_batch())
    fresh.train_step(_sft_batch())
    want, got = _flat(fresh.model, nnx.LoRAParam), _flat(learner.model, nnx.LoRAParam)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert any(isinstance(x.sharding.spec[0], str) or isinstance(x.sharding.spec[-1], str)
               for x in jax.tree.leaves(learner.state.params))  # the adapters are really sharded


def test_the_kl_reference_is_the_base_with_the_adapters_off():
    mesh = single_device_mesh()
    learner = Learner(create_model(CFG, mesh=mesh, seed=0), mesh, OptimSettings(lr=3e-2), LossSettings(beta=0.1))
    # the reference is zero adapters: the size of the adapters, no copy of the base weights
    assert jax.tree.structure(learner.ref_params) == jax.tree.structure(learner.state.params)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(learner.ref_params))
    m1 = learner.train_step(_rl_batch())
    assert m1["kl_ref"] == pytest.approx(0.0, abs=1e-7)  # fresh adapters: policy == base
    for _ in range(2):
        m = learner.train_step(_rl_batch())
    assert m["kl_ref"] > 0.0
    batch = _rl_batch(seed=1)
    start, window = trained_window(batch.mask)
    dev = learner.device_batch(batch, batch.mask, start)
    ref = np.asarray(learner._ref_logp(learner.ref_params, dev["tokens"], dev["start"], window, learner.rest))[0]
    base = create_model(PLAIN, mesh=mesh, seed=0)  # the same base weights, no adapters at all
    want = np.asarray(token_logprobs(base, jnp.asarray(batch.tokens), 0, jnp.asarray(start), window)[0])
    np.testing.assert_allclose(ref, want, rtol=1e-6, atol=1e-6)
    policy = np.asarray(token_logprobs(learner.model, jnp.asarray(batch.tokens), 0, jnp.asarray(start), window)[0])
    assert np.abs(policy - want).max() > 1e-3  # while the trained policy has moved away from it


def test_the_engine_samples_from_the_base_plus_the_current_adapters(sft_run):
    """Rollouts after an update use the updated adapters (engine.reset snapshots nnx.state(model))."""
    _, _, learner = sft_run
    model = learner.model
    engine = Engine(model, num_rows=2, max_len=32, min_window=32)
    prompts = [[5, 9, 2, 7], [11, 3]]

    def sampled():
        engine.start(prompts, seed=3)
        return engine.decode_segment(8)

    def teacher_forced(segs):
        out = []
        for p, s in zip(prompts, segs):
            ids = jnp.asarray([p + s.tokens], jnp.int32)
            lp = np.asarray(token_logprobs(model, ids)[0])[0]
            out.append(lp[len(p):])
        return out

    before = sampled()
    for seg, lp in zip(before, teacher_forced(before)):
        np.testing.assert_allclose(seg.raw_logprobs, lp, rtol=1e-4, atol=1e-4)
    learner.train_step(_sft_batch(seed=2))  # the update donates the old adapters, points the model at new ones
    after = sampled()
    for seg, lp in zip(after, teacher_forced(after)):  # teacher-forced by the updated model
        np.testing.assert_allclose(seg.raw_logprobs, lp, rtol=1e-4, atol=1e-4)
    # and the update mattered: the earlier rollouts score differently under the updated adapters
    stale = teacher_forced(before)
    assert max(np.abs(np.asarray(seg.raw_logprobs) - lp).max() for seg, lp in zip(before, stale)) > 1e-3


def test_a_remat_lora_step_equals_the_plain_one():
    """model.remat recomputes each layer in the backward pass, also with the frozen base and the
    differentiated adapters coming from different traces."""
    out = []
    for remat in (False, True):
        learner = Learner(create_model(CFG.replace(remat=remat), seed=0), single_device_mesh(), OptimSettings(lr=1e-2),
                          LossSettings(kind="sft"))
        out.append((learner.train_step(_sft_batch())["loss"], _flat(learner.model, nnx.LoRAParam)))
    assert out[1][0] == pytest.approx(out[0][0], rel=1e-6)
    for k, v in out[0][1].items():
        np.testing.assert_allclose(out[1][1][k], v, rtol=1e-5, atol=1e-7, err_msg=k)
