"""The agent loop driven by a scripted engine against a real bm25s index: exact tokens, masks, thoughts."""

import pytest

from egrpo_jax.agent import parse as P
from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.agent.loop import run_rollouts
from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.testing.scripted import ScriptedEngine, fake_logprob
from egrpo_jax.agent.template import encode, render_prompt, render_tool_response, stop_token_sequences
from egrpo_jax.agent.trajectory import ANSWERED, FORMAT_ERROR, OVERLENGTH
from egrpo_jax.data.schema import Entity, QARecord
from egrpo_jax.tools.registry import ToolConfig, ToolSet

TOK = ByteTokenizer()
SEARCH = '<think>I should search.</think>\n<tool_call>{"name": "search", "arguments": {"query": "capital of France"}}</tool_call>'
VISIT = '<think>Paris looks right.</think>\n<tool_call>{"name": "visit", "arguments": {"url": ["d1"], "goal": "confirm"}}</tool_call>'
ANSWER = "<think>Confirmed: Paris.</think>\n<answer>Paris</answer>"


def _engine(streams, max_len=4096):
    return ScriptedEngine([TOK.encode("".join(s)) if isinstance(s, list) else s for s in streams],
                          max_len=max_len, stop_sequences=stop_token_sequences(TOK), eos_ids=TOK.eos_ids)


def _tools(index, **kw):
    return ToolSet(index, ToolConfig(topk=3, snippet_chars=60, page_tokens=20, **kw))


def _check_invariants(trajs, engine, limit):
    for r, t in enumerate(trajs):
        assert engine.cache[r] == t.tokens  # the engine saw exactly the trajectory's tokens
        assert len(t.tokens) <= limit
        assert all(m == 0 for m in t.loss_mask[: t.prompt_len])
        for i, (m, lp) in enumerate(zip(t.loss_mask, t.logprobs)):
            assert lp == (fake_logprob(t.tokens[i], i) if m else 0.0)
            assert t.raw_logprobs[i] == (lp - 0.5 if m else 0.0)


def test_multi_turn_rollouts_exact(small_index):
    q = QARecord("q1", "What is the capital of France?", "Paris", (), (Entity("Paris"),))
    streams = [
        [SEARCH, VISIT, ANSWER],  # row 0: search -> visit -> answer
        ['<think>go</think><tool_call>{"name": search}</tool_call>'],  # row 1: bad JSON
        ["<think>hmm</think>"],  # row 2: ends with EOS, no answer
    ]
    engine = _engine(streams)
    cfg = AgentConfig(group_size=3, prompt_style="short")
    with _tools(small_index) as tools:
        trajs, m = run_rollouts(engine, TOK, [q], tools, cfg)
        want_search = tools.search(["capital of France"]).text
        want_visit = tools.visit(["d1"], "confirm").text
    prompt = encode(TOK, render_prompt(TOK, q.question, style="short"))
    t0, t1, t2 = trajs
    # Row 0: exact token stream prompt | model | host | model | host | model, mask 1 on model tokens only.
    parts = [(prompt, 0), (TOK.encode(SEARCH), 1), (TOK.encode(render_tool_response(want_search)), 0),
             (TOK.encode(VISIT), 1), (TOK.encode(render_tool_response(want_visit)), 0), (TOK.encode(ANSWER), 1)]
    assert t0.tokens == [x for p, _ in parts for x in p]
    assert t0.loss_mask == [m_ for p, m_ in parts for _ in p]
    assert t0.prompt_len == len(prompt)
    assert t0.thoughts == ["I should search.", "Paris looks right.", "Confirmed: Paris."]
    assert (t0.status, t0.answer, t0.format_error, t0.num_turns) == (ANSWERED, "Paris", None, 3)
    assert [(c.name, c.arguments, c.ok) for c in t0.tool_calls] == [
        ("search", {"query": ["capital of France"]}, True), ("visit", {"url": ["d1"], "goal": "confirm"}, True)]
    assert t0.tool_calls[0].response == want_search and "1. Paris (url: d1)" in want_search
    assert want_visit.startswith("Page: Paris (url: d1)\nParis is the capital")
    assert t0.text == SEARCH + render_tool_response(want_search) + VISIT + render_tool_response(want_visit) + ANSWER
    assert t0.num_model_tokens == len(TOK.encode(SEARCH + VISIT + ANSWER))
    # Row 1: bad JSON ends the rollout; its thought is kept.
    assert (t1.status, t1.format_error, t1.thoughts, t1.tool_calls) == (FORMAT_ERROR, P.BAD_JSON, ["go"], [])
    # Row 2: the EOS token is a model token (trained on) but not part of the parsed text.
    assert (t2.status, t2.format_error, t2.thoughts) == (FORMAT_ERROR, P.NO_ANSWER, ["hmm"])
    assert t2.tokens[-1] == 0 and t2.loss_mask[-1] == 1 and t2.text == "<think>hmm</think>"
    assert all(t.question_id == "q1" for t in trajs) and [t.sample_index for t in trajs] == [0, 1, 2]
    _check_invariants(trajs, engine, 4096)
    # Engine protocol use: finished rows are freed at once; local tools are waited for, so the row
    # that called one is extended and rejoins the very next decode block.
    assert [c[:2] for c in engine.calls] == [
        ("reset", 0), ("insert", [0, 1, 2]), ("begin", [0, 1, 2]), ("decode", [0, 1, 2]), ("extend", [0]),
        ("begin", [0]), ("mark_done", [1, 2]), ("decode", [0]), ("extend", [0]), ("begin", [0]), ("decode", [0]),
        ("mark_done", [0])]
    assert m["status/answered"] == pytest.approx(1 / 3) and m["format_error/bad_json"] == pytest.approx(1 / 3)
    assert m["format_error/no_answer"] == pytest.approx(1 / 3)
    assert (m["tool_calls/total"], m["tool_calls/search"], m["tool_calls/visit"], m["turns"]) == (2, 1, 1, 3)
    assert m["tool_calls/mean"] == pytest.approx(2 / 3)
    assert m["time/total_s"] >= m["time/device_s"] >= 0 and m["time/host_s"] >= m["time/tools_s"] > 0
    # local tools run inline: the loop's wait encloses the tool call (nested timers, one thread)
    assert m["time/tools_wait_s"] >= m["time/tools_s"]


class _RemoteTools(ToolSet):
    remote = True  # as an HTTP backend: calls overlap the next decode block


def test_remote_tools_overlap_the_next_block_with_the_same_rollouts(small_index):
    """A remote tool runs while the next block decodes: its row sits out that block and is extended
    after it (one extend per block). The trajectories are those of the local schedule."""
    q = QARecord("q1", "What is the capital of France?", "Paris", (), (Entity("Paris"),))
    streams = [[SEARCH, VISIT, ANSWER], ["<think>a</think><answer>x</answer>"], ["<think>b</think>"]]
    cfg = AgentConfig(group_size=3, prompt_style="short")
    got = {}
    for cls in (ToolSet, _RemoteTools):
        engine = _engine(streams)
        with cls(small_index, ToolConfig(topk=3, snippet_chars=60, page_tokens=20)) as tools:
            got[cls] = run_rollouts(engine, TOK, [q], tools, cfg)[0], engine.calls
    assert [c[:2] for c in got[_RemoteTools][1]] == [
        ("reset", 0), ("insert", [0, 1, 2]), ("begin", [0, 1, 2]), ("decode", [0, 1, 2]), ("mark_done", [1, 2]),
        ("extend", [0]), ("begin", [0]), ("decode", [0]), ("extend", [0]), ("begin", [0]), ("decode", [0]),
        ("mark_done", [0])]
    view = [[(t.tokens, t.loss_mask, t.status, [c.response for c in t.tool_calls]) for t in got[c][0]]
            for c in (ToolSet, _RemoteTools)]
    assert view[0] == view[1] and view[0][0][2] == ANSWERED


def test_limits_tool_calls_turn_and_total_tokens(small_index):
    cfg = AgentConfig(group_size=1, prompt_style="short", max_tool_calls=2, max_turn_tokens=300, max_total_tokens=2000)
    streams = [
        [SEARCH, SEARCH, SEARCH, ANSWER],  # third call exceeds max_tool_calls=2
        ["<think>" + "x" * 400],  # one turn longer than max_turn_tokens
        [SEARCH] * 20,  # runs into the total budget (host response overflow or model budget)
    ]
    engine = _engine(streams)
    qs = [("a", "Capital of France?"), ("b", "Q b"), ("c", "Q c")]
    with _tools(small_index) as tools:
        trajs, m = run_rollouts(engine, TOK, qs, tools, cfg)
    a, b, c = trajs
    assert a.status == OVERLENGTH and a.num_tool_calls == 2 and "max_tool_calls=2" in a.detail
    assert a.tokens[-len(TOK.encode(SEARCH)):] == TOK.encode(SEARCH)  # the refused call is kept, not run
    assert b.status == OVERLENGTH and "turn token limit (300)" in b.detail
    assert sum(b.loss_mask) == 300
    assert c.status == OVERLENGTH and len(c.tokens) <= 2000
    assert m["status/overlength"] == 1.0
    _check_invariants(trajs, engine, 2000)


def test_tool_response_that_overflows_the_cache_is_overlength(small_index):
    prompt_len = len(encode(TOK, render_prompt(TOK, "Q", style="short")))
    limit = prompt_len + len(TOK.encode(SEARCH)) + 50  # room for the call, not for its response
    engine = _engine([[SEARCH, ANSWER]], max_len=limit)
    with _tools(small_index) as tools:
        (t,), m = run_rollouts(engine, TOK, [("q", "Q")], tools, AgentConfig(prompt_style="short"))
    assert t.status == OVERLENGTH and "overflows" in t.detail and m["status/overlength"] == 1.0
    assert len(t.tokens) == prompt_len + len(TOK.encode(SEARCH)) and t.num_tool_calls == 1
    _check_invariants([t], engine, limit)


def test_prompt_longer_than_limit_is_overlength_without_decoding(small_index):
    engine = _engine([[ANSWER], [ANSWER]], max_len=4096)
    with _tools(small_index) as tools:
        trajs, _ = run_rollouts(engine, TOK, [("long", "x" * 5000), ("ok", "Q")], tools,
                                AgentConfig(prompt_style="short", max_total_tokens=4096))
    assert trajs[0].status == OVERLENGTH and trajs[0].num_model_tokens == 0
    assert trajs[1].status == ANSWERED and trajs[1].answer == "Paris"


def test_failed_tool_is_error_text_and_rollout_continues(small_index):
    class Down:
        def search(self, queries, topk):
            raise ConnectionError("retrieval server unreachable")

        def fetch(self, ids):
            raise ConnectionError("retrieval server unreachable")

    engine = _engine([[SEARCH, ANSWER]])
    with ToolSet(Down()) as tools:
        (t,), m = run_rollouts(engine, TOK, [("q", "Q")], tools, AgentConfig(prompt_style="short"))
    assert t.status == ANSWERED and not t.tool_calls[0].ok
    assert "Error: the search tool failed: retrieval server unreachable" in t.text
    assert m["tool_calls/failed"] == 1


@pytest.mark.parametrize("kw", [{"group_size": 0}, {"max_tool_calls": -1}, {"max_total_tokens": 1},
                                {"max_turn_tokens": -5}, {"prompt_style": "tiny"}, {"group_size": 1.5}])
def test_agent_config_validation(kw):
    with pytest.raises(ValueError, match="agent\\."):
        AgentConfig(**kw)


def test_engine_log_probs_that_do_not_cover_the_tokens_are_an_error(small_index):
    class Short(ScriptedEngine):
        def decode(self, max_steps=0):
            segs = super().decode(max_steps)
            for s in segs.values():
                s.raw_logprobs = s.raw_logprobs[:-1]  # one short: padding it would fake a ratio
            return segs

    engine = Short([TOK.encode(ANSWER)], max_len=4096, stop_sequences=stop_token_sequences(TOK), eos_ids=TOK.eos_ids)
    with _tools(small_index) as tools, pytest.raises(ValueError, match=r"row q/0: .* tokens but .* raw log-probs"):
        run_rollouts(engine, TOK, [("q", "Q")], tools, AgentConfig(prompt_style="short"))


def test_each_thought_records_the_tool_responses_read_before_it(small_index):
    q = QARecord("q1", "What is the capital of France?", "Paris", (), (Entity("Paris"),))
    two = "<think>First.</think><think>Second.</think>" + SEARCH.split("</think>", 1)[1]
    engine = _engine([[two, VISIT, ANSWER], ["<think>go</think><tool_call>{}</tool_call>"]])
    with _tools(small_index) as tools:
        (t0, t1), _ = run_rollouts(engine, TOK, [q], tools, AgentConfig(group_size=2, prompt_style="short"))
    assert t0.thoughts == ["First.", "Second.", "Paris looks right.", "Confirmed: Paris."]
    assert t0.responses_before == [0, 0, 1, 2]  # the grounded entity credit's "earlier"
    assert (t1.thoughts, t1.responses_before) == (["go"], [0])
