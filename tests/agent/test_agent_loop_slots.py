"""Rollouts streamed through fewer engine rows: refill, tool-wait exclusion, tool/decode overlap, and
the same trajectories as the lock-step loop (scripted engine, then the real engine)."""

import threading


import numpy as np
import pytest

from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.agent.loop import run_rollouts
from egrpo_jax.agent.template import stop_token_sequences
from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.engine import Engine
from egrpo_jax.testing.action_policy import fix_next_token_distribution
from egrpo_jax.testing.scripted import ACTION_ANSWER, ACTION_CALL, ActionTokenizer, ScriptedEngine
from egrpo_jax.tools.registry import ToolConfig, ToolSet

TOK = ByteTokenizer()
SEARCH = '<think>search {}.</think>\n<tool_call>{{"name": "search", "arguments": {{"query": "capital of France"}}}}</tool_call>'
ANSWER = "<think>{} done.</think>\n<answer>Paris</answer>"
# Uneven rollouts: 0-4 tool calls, thoughts of different lengths.
PLANS = [[SEARCH.format("a" * (5 * i))] * (i % 5) + [ANSWER.format("b" * (3 * i))] for i in range(7)]
QUESTIONS = [(f"q{i}", f"Question {i}?") for i in range(7)]


def _scripted(num_rows=None, cls=ScriptedEngine, plans=PLANS):
    return cls([TOK.encode("".join(p)) for p in plans], max_len=4096, stop_sequences=stop_token_sequences(TOK),
               eos_ids=TOK.eos_ids, num_rows=num_rows)


def _view(trajs):
    return [(t.question_id, t.tokens, t.loss_mask, t.logprobs, t.raw_logprobs, t.status, t.answer,
             [(c.name, c.response) for c in t.tool_calls], t.num_turns) for t in trajs]


def test_three_rows_give_the_lock_step_trajectories(small_index):
    cfg = AgentConfig(group_size=1, prompt_style="short")
    with ToolSet(small_index, ToolConfig(topk=2, snippet_chars=40)) as tools:
        want, _ = run_rollouts(_scripted(), TOK, QUESTIONS, tools, cfg)
        engine = _scripted(num_rows=3)
        seen = []
        got, m = run_rollouts(engine, TOK, QUESTIONS, tools, AgentConfig(group_size=1, prompt_style="short",
                                                                           segment_steps=7),
                              on_rollout=lambda j, t: seen.append((j, t.question_id)))
    assert _view(got) == _view(want)
    assert [t.num_tool_calls for t in got] == [i % 5 for i in range(7)]
    # every row was busy at once, and freed rows took new rollouts in later inserts
    assert engine.max_live == 3 and m["rollouts"] == 7
    assert len([c for c in engine.calls if c[0] == "insert"]) > 1
    inserted = [j for c in engine.calls if c[0] == "insert" for j in c[2]]
    assert sorted(inserted) == list(range(7)) and len(inserted) == 7  # each rollout entered a row once
    assert sorted(seen) == [(j, f"q{j}") for j in range(7)]  # on_rollout heard of every one as it ended
    # Each row runs insert -> begin -> decode... -> [ended: extend -> begin -> decode...] -> mark_done: a
    # row that asked for a tool sits out of the decode blocks until its response is appended.
    state: dict[int, str] = {}
    for k, c in enumerate(engine.calls):
        rows = c[1]
        if c[0] == "insert":
            assert all(state.get(r, "free") == "free" for r in rows), k
            state.update({r: "fresh" for r in rows})
        elif c[0] == "begin":
            assert all(state[r] in ("fresh", "extended") for r in rows), k
            state.update({r: "decoding" for r in rows})
        elif c[0] == "decode":
            assert all(state[r] == "decoding" for r in rows), f"call {k}: a waiting row decoded"
            state.update({r: "paused" for r in c[2]})
        elif c[0] == "extend":
            assert all(state[r] == "paused" for r in rows), k
            state.update({r: "extended" for r in rows})
        elif c[0] == "mark_done":
            assert all(state[r] == "paused" for r in rows), k
            state.update({r: "free" for r in rows})
    assert set(state.values()) == {"free"}


def test_tool_calls_run_while_other_rows_decode(small_index):
    entered = threading.Event()

    class Signalling(ScriptedEngine):
        def decode(self, max_steps=0):
            out = super().decode(max_steps)
            if len(self.calls) > 6:  # past the first block: a tool call is in flight now
                entered.set()
            return out

    overlapped = []

    class SlowTools(ToolSet):
        remote = True  # as an HTTP backend: the loop overlaps its calls with decoding

        def run_batch(self, calls):
            overlapped.append(entered.wait(timeout=20))  # a sequential loop would never set it
            return super().run_batch(calls)

    # rollout 0 calls a tool after a few tokens; rollout 1 writes a long thought meanwhile
    plans = [[SEARCH.format(""), ANSWER.format("")], [ANSWER.format("x" * 200)]]
    engine = _scripted(cls=Signalling, plans=plans)
    with SlowTools(small_index, ToolConfig(topk=1, snippet_chars=20)) as tools:
        trajs, m = run_rollouts(engine, TOK, QUESTIONS[:2], tools,
                                AgentConfig(group_size=1, prompt_style="short", segment_steps=8))
    assert overlapped == [True] and [t.status for t in trajs] == ["answered", "answered"]
    # no ordering between the two clocks here: the wait also covers the worker's hand-back
    assert m["time/tools_s"] > 0 and m["time/tools_wait_s"] >= 0


@pytest.fixture(scope="module")
def biased_policy():
    """A random policy over whole actions (P(call) ~ 0.7): uneven turn counts under sampling."""
    tok = ActionTokenizer()
    model = create_model(tiny_config("qwen2", vocab_size=tok.vocab_size), mesh=single_device_mesh(), seed=0)
    fix_next_token_distribution(model, {ACTION_CALL: 0.7, ACTION_ANSWER: 0.3})
    return tok, model


@pytest.mark.parametrize("sampling", [SamplingParams(temperature=1.0), SamplingParams(temperature=0.0)],
                         ids=["sampled", "greedy"])
def test_real_engine_streams_rollouts_through_three_rows(small_index, biased_policy, sampling):
    tok, model = biased_policy

    def run(rows, steps):
        engine = Engine(model, num_rows=rows, max_len=512, sampling=sampling, stop_sequences=[[ACTION_CALL], [ACTION_ANSWER]],
                        eos_ids=tok.eos_ids)
        cfg = AgentConfig(group_size=2, prompt_style="short", max_tool_calls=4, segment_steps=steps, seed=3)
        with ToolSet(small_index, ToolConfig(topk=1, snippet_chars=20)) as tools:
            return run_rollouts(engine, tok, QUESTIONS[:5], tools, cfg)

    want, _ = run(10, 0)
    got, m = run(3, 1)
    assert [t.tokens for t in got] == [t.tokens for t in want]
    assert [t.status for t in got] == [t.status for t in want]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.raw_logprobs, b.raw_logprobs, atol=1e-5)
    if sampling.temperature:  # the rollouts really are uneven, so rows were refilled mid-step
        assert len({t.num_tool_calls for t in got}) > 1
