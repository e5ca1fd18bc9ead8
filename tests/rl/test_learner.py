import jax
import numpy as np
import pytest
from flax import nnx

from egrpo_jax.mesh import make_mesh, single_device_mesh
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.rl.batch import TrainBatch, pack_sequences
from egrpo_jax.rl.learner import Learner, LossSettings, OptimSettings
import jax.numpy as jnp

from egrpo_jax.rl.logprobs import token_logprobs, trained_window

CFG = tiny_config("qwen2", num_layers=1)


def _batch(rows=8, length=16, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, CFG.vocab_size, (rows, length)).astype(np.int32)
    mask = (rng.random((rows, length)) < 0.7).astype(np.float32)
    mask[:, :4] = 0
    mask[rows - 1] = 0  # a padding / excluded row
    old = np.where(mask > 0, rng.normal(-5.6, 0.2, (rows, length)), 0).astype(np.float32)
    adv = rng.normal(0, 1, rows).astype(np.float32)
    return TrainBatch(tokens, mask, old, adv, rows - 1)


def _params(model):
    return {".".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


OPT = OptimSettings(lr=1e-2, clip_norm=1.0, weight_decay=0.01)


def test_token_logprobs_match_full_logits_and_chunking():
    model = create_model(CFG, seed=1)
    tokens = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 16)).astype(np.int32)
    lp, ent = token_logprobs(model, tokens)
    lsm = jax.nn.log_softmax(model(tokens), -1)
    ref = np.take_along_axis(np.asarray(lsm[:, :-1]), tokens[:, 1:, None], -1)[..., 0]
    np.testing.assert_allclose(np.asarray(lp[:, 1:]), ref, rtol=1e-5)
    assert np.all(np.asarray(lp[:, 0]) == 0)
    lp4, ent4 = jax.jit(lambda t: token_logprobs(model, t, chunk=4))(tokens)
    np.testing.assert_allclose(np.asarray(lp4), np.asarray(lp), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ent4), np.asarray(ent), rtol=1e-5)
    # window mode: only tokens start_b .. start_b + W - 1 get log-probs, equal to the full ones there
    mask = np.zeros((2, 16), np.float32)
    mask[0, 5:9], mask[1, 12:16] = 1, 1
    start, window = trained_window(mask)
    assert start.tolist() == [5, 12] and window == 4
    lpw, _ = token_logprobs(model, tokens, 0, jnp.asarray(start), window)
    np.testing.assert_allclose(np.asarray(lpw)[mask > 0], np.asarray(lp)[mask > 0], rtol=1e-5)
    assert np.all(np.asarray(lpw)[mask == 0] == 0)


@pytest.fixture(scope="module")
def reference_step():
    """One step on one device, one micro-batch: the reference for the sharded / accumulated steps."""
    model = create_model(CFG, mesh=single_device_mesh(), seed=3)
    before = _params(model)
    learner = Learner(model, single_device_mesh(), OPT, LossSettings(logprob_chunk=8))
    m = learner.train_step(_batch())
    after = _params(learner.model)
    assert m["skipped"] == 0 and m["grad_norm"] > 0
    assert all(not np.allclose(before[k], after[k]) for k in before)  # every parameter moved
    return after, m


@pytest.mark.parametrize("mesh_shape,microbatches", [((2, 2, 2), 1), ((1, 1, 1), 4)])
def test_sharded_and_accumulated_steps_equal_single_device_step(reference_step, mesh_shape, microbatches):
    p1, m1 = reference_step
    mesh = make_mesh(*mesh_shape, devices=jax.devices()[: int(np.prod(mesh_shape))])
    model = create_model(CFG, mesh=mesh, seed=3)
    learner = Learner(model, mesh, OPT, LossSettings(logprob_chunk=8), microbatches=microbatches)
    m = learner.train_step(_batch())
    p = _params(learner.model)
    for k in p1:
        np.testing.assert_allclose(p[k], p1[k], atol=1e-5, rtol=1e-5, err_msg=k)
    for k in ("loss", "grad_norm", "entropy", "kl_sampler", "clip_low", "clip_high"):
        np.testing.assert_allclose(m[k], m1[k], rtol=1e-5, atol=1e-7, err_msg=k)


def test_non_finite_gradients_skip_the_step():
    batch = _batch()
    batch.advantages[0] = np.nan
    model = create_model(CFG, seed=3)
    before = _params(model)
    learner = Learner(model, single_device_mesh(), OPT, LossSettings())
    m = learner.train_step(batch)
    assert m["skipped"] == 1.0
    assert int(learner.state.skipped) == 1 and int(learner.state.step) == 1
    after = _params(learner.model)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    batch.advantages[0] = 0.5
    assert learner.train_step(batch)["skipped"] == 0.0  # the optimizer state was not poisoned


def test_kl_reference_only_with_beta():
    model = create_model(CFG, seed=3)
    no_ref = Learner(model, single_device_mesh(), OPT, LossSettings(beta=0.0))
    assert no_ref.ref_params is None
    assert "kl_ref" not in no_ref.train_step(_batch())  # not computed, so not reported as 0
    model = create_model(CFG, seed=3)
    learner = Learner(model, single_device_mesh(), OPT, LossSettings(beta=0.1))
    assert learner.ref_params is not None
    m1 = learner.train_step(_batch())
    assert m1["kl_ref"] == pytest.approx(0.0, abs=1e-7)  # policy == reference before the update
    m2 = learner.train_step(_batch())
    assert m2["kl_ref"] > 0.0


def test_sft_lowers_loss_on_fixed_batch():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, CFG.vocab_size, 12).tolist() for _ in range(4)]
    masks = [[0] * 5 + [1] * 7 for _ in range(4)]
    batch = pack_sequences(seqs, masks)
    mesh = single_device_mesh()  # sharded equivalence is tested above; keep this one cheap
    learner = Learner(create_model(CFG, mesh=mesh, seed=0), mesh, OptimSettings(lr=3e-3), LossSettings(kind="sft"))
    losses = [learner.train_step(batch)["loss"] for _ in range(8)]
    assert losses[0] == pytest.approx(np.log(CFG.vocab_size), rel=0.05)  # near-uniform at init
    assert losses[-1] < losses[0] - 0.5


def test_rows_with_zero_advantage_are_left_out_with_the_same_update():
    """Late in GRPO most groups are all-correct (advantage 0): the learner trains only on the rows
    that carry gradient, and the update equals the one computed on the whole batch."""
    from egrpo_jax.rl.loss import token_weights

    batch = _batch(rows=8)
    batch.advantages[[0, 2, 3, 5]] = 0.0  # live rows: 1, 4, 6 (row 7 has no trained token)
    whole = Learner(create_model(CFG, seed=3), single_device_mesh(), OPT, LossSettings(logprob_chunk=8))
    w = np.asarray(token_weights(batch.mask, "seq_mean"), np.float32)
    start, window = trained_window(w)
    whole.state, m_whole = whole._step(whole.state, whole.device_batch(batch, w, start), window)
    nnx.update(whole.model, whole.state.params)

    kept = Learner(create_model(CFG, seed=3), single_device_mesh(), OPT, LossSettings(logprob_chunk=8))
    m = kept.train_step(batch)
    assert {shape[0] for shape in kept.compiled_shapes} == {4}  # 3 live rows, padded to 4
    assert m["trained_tokens"] == float(batch.mask[[1, 4, 6]].sum())
    np.testing.assert_allclose(m["loss"], float(m_whole["loss"]), rtol=1e-5, atol=1e-7)
    p_whole, p = _params(whole.model), _params(kept.model)
    for k in p:
        np.testing.assert_allclose(p[k], p_whole[k], atol=1e-6, rtol=1e-5, err_msg=k)


def test_packed_sft_rows_give_the_unpacked_loss_and_update():
    """Demos of uneven length packed several to a row (segments attend only to themselves,
    positions restart) train exactly as one demo per row, on fewer padded positions."""
    rng = np.random.default_rng(4)
    lens = [70, 20, 33, 90, 12, 45, 8, 60]
    seqs = [rng.integers(0, CFG.vocab_size, n).tolist() for n in lens]
    masks = [[0] * 3 + [1] * (n - 3) for n in lens]
    flat = pack_sequences(seqs, masks, max_len=128)
    packed = pack_sequences(seqs, masks, max_len=128, pack=True)
    assert flat.tokens.shape == (8, 128) and packed.tokens.shape == (4, 128)  # 3 rows used, rounded to 4
    for r in range(packed.tokens.shape[0]):
        for s in set(packed.segments[r].tolist()) - {0}:
            at = np.flatnonzero(packed.segments[r] == s)
            i = next(i for i, q in enumerate(seqs) if len(q) == len(at) and q == packed.tokens[r, at].tolist())
            assert packed.positions[r, at].tolist() == list(range(lens[i]))
            assert packed.mask[r, at].tolist() == [0.0] * 3 + [1.0] * (lens[i] - 3)
    assert packed.mask.sum() == flat.mask.sum()
    out = []
    sgd = OptimSettings(name="sgd", lr=1.0, clip_norm=0.0)  # the update is the gradient (Adam would rescale it)
    for batch in (flat, packed):
        learner = Learner(create_model(CFG, seed=5), single_device_mesh(), sgd, LossSettings(kind="sft"))
        m = learner.train_step(batch)
        out.append((m, _params(learner.model)))
    assert out[1][0]["loss"] == pytest.approx(out[0][0]["loss"], rel=1e-5)
    assert out[1][0]["trained_tokens"] == out[0][0]["trained_tokens"]
    for k, v in out[0][1].items():
        np.testing.assert_allclose(out[1][1][k], v, rtol=1e-4, atol=1e-6, err_msg=k)
    rl = Learner(create_model(CFG, seed=5), single_device_mesh(), OPT, LossSettings())
    with pytest.raises(ValueError, match="packed rows are for SFT"):
        rl.train_step(packed)
