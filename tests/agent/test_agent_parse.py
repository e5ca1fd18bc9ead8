import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egrpo_jax.agent import parse as P
from egrpo_jax.agent.parse import (
    ToolCall,
    format_answer,
    format_call,
    format_think,
    parse_rollout,
    parse_segment,
)


def test_think_then_search_call_with_string_query():
    seg = parse_segment('<think> look it up </think>\n<tool_call>{"name": "search", "arguments": '
                        '{"query": "capital of France"}}</tool_call>')
    assert seg.error is None and seg.thoughts == ["look it up"]
    assert seg.call == ToolCall("search", {"query": ["capital of France"]})


def test_visit_call_and_answer():
    seg = parse_segment('<tool_call>{"name": "visit", "arguments": {"url": "d1", "goal": " g "}}</tool_call>')
    assert seg.call == ToolCall("visit", {"url": ["d1"], "goal": "g"})
    seg = parse_segment("<think>a</think><think>b</think>  <answer> Paris </answer>\n")
    assert (seg.thoughts, seg.answer, seg.call, seg.error) == (["a", "b"], "Paris", None, None)


def test_arguments_given_as_json_string_are_accepted():
    seg = parse_segment('<tool_call>{"name": "search", "arguments": "{\\"query\\": [\\"x\\"]}"}</tool_call>')
    assert seg.call == ToolCall("search", {"query": ["x"]})


@pytest.mark.parametrize("text,kind", [
    ("<tool_call>{name: search}</tool_call>", P.BAD_JSON),
    ("<tool_call>[1, 2]</tool_call>", P.BAD_JSON),
    ('<tool_call>{"name": "browse", "arguments": {}}</tool_call>', P.UNKNOWN_TOOL),
    ('<tool_call>{"arguments": {"query": ["x"]}}</tool_call>', P.UNKNOWN_TOOL),
    ('<tool_call>{"name": "search"}</tool_call>', P.MISSING_ARGUMENTS),
    ('<tool_call>{"name": "search", "arguments": {"q": "x"}}</tool_call>', P.MISSING_ARGUMENTS),
    ('<tool_call>{"name": "visit", "arguments": {"url": ["a"]}}</tool_call>', P.MISSING_ARGUMENTS),
    ('<tool_call>{"name": "search", "arguments": {"query": []}}</tool_call>', P.BAD_ARGUMENTS),
    ('<tool_call>{"name": "search", "arguments": {"query": [1]}}</tool_call>', P.BAD_ARGUMENTS),
    ('<tool_call>{"name": "search", "arguments": {"query": "  "}}</tool_call>', P.BAD_ARGUMENTS),
    ('<tool_call>{"name": "visit", "arguments": {"url": "a", "goal": 3}}</tool_call>', P.BAD_ARGUMENTS),
    ("I think <answer>x</answer>", P.TEXT_OUTSIDE_TAGS),
    ("<think>a</think> so <answer>x</answer>", P.TEXT_OUTSIDE_TAGS),
    ("<answer>x</answer> done", P.TEXT_OUTSIDE_TAGS),
    ("<think>never closed", P.UNCLOSED_TAG),
    ("<think>a</think><answer>x", P.UNCLOSED_TAG),
    ('<tool_call>{"name": "search"', P.UNCLOSED_TAG),
    ("</think><answer>x</answer>", P.UNEXPECTED_TAG),
    ("<tool_response>fake</tool_response><answer>x</answer>", P.UNEXPECTED_TAG),
    ("<answer>  </answer>", P.EMPTY_ANSWER),
    ("<think>only thinking</think>", P.NO_ANSWER),
    ("", P.NO_ANSWER),
])
def test_format_error_kinds(text, kind):
    seg = parse_segment(text)
    assert seg.error == kind, seg.detail
    assert seg.call is None and seg.answer is None
    assert seg.detail


def test_disabled_tool_is_unknown():
    seg = parse_segment('<tool_call>{"name": "visit", "arguments": {"url": "a", "goal": ""}}</tool_call>',
                        tools=("search",))
    assert seg.error == P.UNKNOWN_TOOL


def test_parse_rollout_whole_trajectory():
    text = ('<think>t1</think><tool_call>{"name": "search", "arguments": {"query": ["q"]}}</tool_call>'
            "\n<tool_response>\nResults mention <answer>fake</answer> and <think>x</think>\n</tool_response>\n"
            "<think>t2</think><answer>A</answer>")
    r = parse_rollout(text)
    assert (r.thoughts, r.answer, r.error) == (["t1", "t2"], "A", None)
    assert r.calls == [ToolCall("search", {"query": ["q"]})]


@pytest.mark.parametrize("text,kind", [
    ('<tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>', P.NO_ANSWER),
    ("<answer>a</answer><tool_response>x</tool_response><answer>b</answer>", P.UNEXPECTED_TAG),
    ("<tool_response>x", P.UNCLOSED_TAG),
    ("<think>x</think>", P.NO_ANSWER),
])
def test_parse_rollout_errors(text, kind):
    assert parse_rollout(text).error == kind


def test_non_string_input_is_an_error_not_a_crash():
    assert parse_segment(None).error == P.TEXT_OUTSIDE_TAGS  # type: ignore[arg-type]
    assert parse_rollout(b"bytes").error == P.TEXT_OUTSIDE_TAGS  # type: ignore[arg-type]


_TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<answer>", "</answer>", "<tool_response>",
         "</tool_response>", '{"name": "search", "arguments": {"query": ', '"x"', "[", "]", "}", "{", " ", "\n"]
tagged_text = st.lists(st.one_of(st.sampled_from(_TAGS), st.text(max_size=8)), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), tagged_text))
def test_parsers_never_raise(text):
    seg = parse_segment(text)
    assert seg.error in (None, *P.FORMAT_ERRORS)
    assert (seg.error is None) == ((seg.call is None) != (seg.answer is None))
    r = parse_rollout(text)
    assert r.error in (None, *P.FORMAT_ERRORS)


safe_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda s: s.strip() and "<" not in s and ">" not in s)
thoughts = st.lists(safe_text, max_size=3)
search_call = st.lists(safe_text, min_size=1, max_size=4).map(lambda q: ToolCall("search", {"query": [x.strip() for x in q]}))
visit_call = st.tuples(st.lists(safe_text, min_size=1, max_size=3), safe_text).map(
    lambda t: ToolCall("visit", {"url": [x.strip() for x in t[0]], "goal": t[1].strip()}))


@settings(max_examples=200, deadline=None)
@given(thoughts, st.one_of(search_call, visit_call))
def test_well_formed_calls_round_trip(ths, call):
    text = "\n".join(format_think(t) for t in ths) + "\n" + format_call(call)
    seg = parse_segment(text)
    assert seg.error is None
    assert seg.call == call
    assert seg.thoughts == [t.strip() for t in ths]
    assert json.loads(format_call(call)[len("<tool_call>"):-len("</tool_call>")])["name"] == call.name


@settings(max_examples=100, deadline=None)
@given(thoughts, safe_text)
def test_well_formed_answers_round_trip(ths, answer):
    seg = parse_segment("".join(format_think(t) for t in ths) + format_answer(answer))
    assert (seg.error, seg.answer, seg.thoughts) == (None, answer.strip(), [t.strip() for t in ths])
