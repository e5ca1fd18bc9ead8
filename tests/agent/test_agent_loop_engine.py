"""The agent loop with the real engine and tiny random models on the 8-device (2, 2, 2) mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.agent.loop import run_rollouts
from egrpo_jax.testing.scripted import ACTION_ANSWER as ANSWER
from egrpo_jax.testing.scripted import ACTION_CALL as CALL
from egrpo_jax.testing.scripted import ActionTokenizer
from egrpo_jax.agent.trajectory import ANSWERED, OVERLENGTH, STATUSES
from egrpo_jax.mesh import make_mesh
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.engine import Engine
from egrpo_jax.tools.registry import ToolConfig, ToolSet


def _put(var, new):
    var.set_value(jax.device_put(new, var.get_value().sharding))


@pytest.fixture(scope="module")
def setup():
    """One model + engine for both tests: the second reuses the first's compiled executables."""
    tok = ActionTokenizer()
    mesh = make_mesh(2, 2, 2)
    assert mesh.size == 8
    model = create_model(tiny_config("qwen2", vocab_size=tok.vocab_size), mesh=mesh, seed=0)
    engine = Engine(model, num_rows=8, max_len=1024, sampling=SamplingParams(temperature=1.0), mesh=mesh,
                    stop_sequences=[[CALL], [ANSWER]], eos_ids=tok.eos_ids)
    original = {"embed": model.embed.get_value(), "lm_head": model.lm_head.get_value(),
                "scale": model.norm.scale.get_value()}
    return tok, model, engine, original


def _set_params(model, original, biased):
    _put(model.embed, original["embed"])
    _put(model.norm.scale, original["scale"])
    _put(model.lm_head, original["lm_head"])
    if biased:
        # Residual dim 0 carries a large constant, the final norm keeps only dim 0, and the head maps
        # it to P(call) ~ 0.7, P(answer) ~ 0.3, bytes/EOS ~ 0: a random policy over well-formed actions.
        _put(model.embed, original["embed"].at[:, 0].set(100.0))
        _put(model.norm.scale, jnp.zeros_like(original["scale"]).at[0].set(1.0))
        head = jnp.zeros_like(original["lm_head"]).at[0, :].set(-10.0)
        _put(model.lm_head, head.at[0, CALL].set(1.0).at[0, ANSWER].set(0.9))


def _run(setup, index, cfg, tool_cfg):
    tok, model, engine, _ = setup
    max_len = engine.max_len
    questions = [(f"q{i}", f"Question {i}?") for i in range(4)]
    with ToolSet(index, tool_cfg) as tools:
        trajs, m = run_rollouts(engine, tok, questions, tools, cfg)
    assert [t.question_id for t in trajs] == ["q0", "q0", "q1", "q1", "q2", "q2", "q3", "q3"]
    assert not engine.live().any()  # every row terminated
    lengths = engine.lengths()
    for r, t in enumerate(trajs):
        assert t.status in STATUSES
        assert len(t.tokens) == int(lengths[r]) <= min(cfg.max_total_tokens, max_len)
        assert t.num_model_tokens >= 1 and t.loss_mask[: t.prompt_len] == [0] * t.prompt_len
        assert all(lp == 0.0 for lp, k in zip(t.logprobs, t.loss_mask) if not k)
    # The sampler's temperature-1 log-probs equal a fresh forward pass over each whole trajectory
    # (prompt, model and host tokens): the cache writes of start / decode / extend were right.
    fwd = jax.jit(lambda x: jax.nn.log_softmax(model(x), axis=-1))
    toks = np.zeros((8, max(len(t.tokens) for t in trajs)), np.int32)
    for r, t in enumerate(trajs):
        toks[r, : len(t.tokens)] = t.tokens
    lp = np.asarray(fwd(jnp.asarray(toks)))
    for r, t in enumerate(trajs):
        pos = [i for i, k in enumerate(t.loss_mask) if k]
        np.testing.assert_allclose([t.raw_logprobs[i] for i in pos], [lp[r, i - 1, t.tokens[i]] for i in pos],
                                   atol=2e-4)
        np.testing.assert_allclose([t.logprobs[i] for i in pos], [t.raw_logprobs[i] for i in pos], atol=1e-5)
    return trajs, m


def test_random_model_rollouts_terminate(small_index, setup):
    _set_params(setup[1], setup[3], biased=False)
    cfg = AgentConfig(group_size=2, prompt_style="short", max_total_tokens=440, max_turn_tokens=16)
    trajs, m = _run(setup, small_index, cfg, ToolConfig())
    assert all(len(t.tokens) - t.prompt_len <= 16 for t in trajs)  # one turn at most, capped by max_turn_tokens
    assert m["rollouts"] == 8 and m["status/answered"] + m["status/format_error"] + m["status/overlength"] == 1


def test_biased_model_makes_tool_calls_through_the_real_engine(small_index, setup):
    _set_params(setup[1], setup[3], biased=True)
    cfg = AgentConfig(group_size=2, prompt_style="short", max_total_tokens=1024, max_tool_calls=3)
    trajs, m = _run(setup, small_index, cfg, ToolConfig(topk=1, snippet_chars=20))
    for t in trajs:
        model_toks = [x for x, k in zip(t.tokens, t.loss_mask) if k]
        assert set(model_toks) <= {CALL, ANSWER}
        assert t.num_tool_calls == model_toks.count(CALL) - (t.status == OVERLENGTH)
        if t.status == ANSWERED:
            assert t.answer == "Paris" and t.thoughts == ["look it up"] * t.num_tool_calls + ["found it"]
        else:
            assert t.status == OVERLENGTH and "max_tool_calls=3" in t.detail
        assert all(c.ok and c.response.startswith('Results for "Paris":\n1. Paris (url: d1)') for c in t.tool_calls)
    assert m["tool_calls/total"] > 0 and m["status/answered"] > 0
