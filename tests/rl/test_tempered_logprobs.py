"""The learner scores rollouts under the distribution the sampler drew them from.

With temperature / top-k / top-p sampling, the importance ratio pi_learner / pi_sampler must be 1
on-policy; a learner that recomputes plain temperature-1 log-probs gets a wrong ratio (the defect
this guards against)."""

import numpy as np
import pytest

from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.rl.batch import TrainBatch
from egrpo_jax.rl.learner import Learner, LossSettings, OptimSettings
from egrpo_jax.rl.logprobs import token_logprobs
from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.generation import generate

SAMPLINGS = [SamplingParams(0.7), SamplingParams(1.0, top_p=0.8), SamplingParams(0.6, top_p=0.95, top_k=40),
             SamplingParams(1.3, top_k=5)]


def _rollouts(model, sampling, seed=0):
    tok = ByteTokenizer()
    prompts = [[1 + (7 * i + j) % 200 for j in range(3 + i)] for i in range(6)]
    gens = generate(model, tok, prompts, max_new_tokens=12, temperature=sampling.temperature,
                    top_p=sampling.top_p, top_k=sampling.top_k, seed=seed)
    T = 32
    tokens = np.zeros((8, T), np.int32)
    mask = np.zeros((8, T), np.float32)
    old = np.zeros((8, T), np.float32)
    for i, (p, g) in enumerate(zip(prompts, gens)):
        n = len(p) + len(g.tokens)
        tokens[i, :n] = p + g.tokens
        mask[i, len(p):n] = 1
        old[i, len(p):n] = g.logprobs
    return tokens, mask, old


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=str)
def test_learner_logprobs_equal_sampler_logprobs(sampling):
    model = create_model(tiny_config("qwen2", vocab_size=257, num_layers=1), mesh=single_device_mesh(), seed=0)
    tokens, mask, old = _rollouts(model, sampling)
    lp, ent = token_logprobs(model, tokens, sampling=sampling)
    on = mask > 0
    np.testing.assert_allclose(np.asarray(lp)[on], old[on], atol=2e-5)
    plain, _ = token_logprobs(model, tokens)  # what the learner used to compute
    assert np.abs(np.asarray(plain)[on] - old[on]).max() > 0.05
    assert np.all(np.isfinite(np.asarray(ent)[on]))


def test_train_step_ratio_is_one_on_policy():
    sampling = SamplingParams(0.6, top_p=0.9)
    metrics = {}
    for name, loss_sampling in (("matched", sampling), ("plain", SamplingParams())):
        model = create_model(tiny_config("qwen2", vocab_size=257, num_layers=1), mesh=single_device_mesh(), seed=0)
        tokens, mask, old = _rollouts(model, sampling)
        learner = Learner(model, single_device_mesh(), OptimSettings(lr=1e-3),
                          LossSettings(sampling=loss_sampling))
        adv = np.array([1, -1, 1, -1, 1, -1, 0, 0], np.float32)
        metrics[name] = learner.train_step(TrainBatch(tokens, mask, old, adv, 6))
    assert abs(metrics["matched"]["kl_sampler"]) < 1e-5
    assert abs(metrics["matched"]["ratio"] - 1.0) < 1e-5
    assert metrics["matched"]["clip_low"] == 0 and metrics["matched"]["clip_high"] == 0
    assert abs(metrics["plain"]["ratio"] - 1.0) > 0.05  # the old defect: a wrong ratio on-policy


def test_rl_loss_settings_reject_greedy_sampling():
    with pytest.raises(ValueError, match="temperature"):
        LossSettings(kind="rl", sampling=SamplingParams(0.0))
