import threading

import pytest

from egrpo_jax.agent.parse import ToolCall
from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.tools.registry import ToolConfig, ToolSet
from egrpo_jax.tools.search import snippet
from egrpo_jax.tools.visit import truncate


def test_search_text_exact(small_index):
    with ToolSet(small_index, ToolConfig(topk=2, snippet_chars=30)) as tools:
        res = tools.search(["capital of Germany", "zzzz"])
    assert res.ok and res.error is None
    assert res.text == (
        'Results for "capital of Germany":\n'
        "1. Berlin (url: https://wiki.example/Berlin)\nBerlin is the capital of ...\n"
        "2. Paris (url: d1)\nParis is the capital and ...\n\n"
        'No results for "zzzz".'
    )


def test_visit_text_and_token_budget(small_index):
    with ToolSet(small_index, ToolConfig(page_tokens=5)) as tools:
        res = tools.visit(["d1", "nope"], "find the river")
    assert res.text == "Page: Paris (url: d1)\nParis is the capital and ...\n\nNo page found for 'nope'."
    tok = ByteTokenizer()
    with ToolSet(small_index, ToolConfig(page_tokens=8), tokenizer=tok) as tools:
        res = tools.visit(["d3"], "")
    assert res.text == "Page: Rome (url: d3)\nRome is  ..."  # 8 byte-tokens


def test_truncate_words_and_tokens():
    assert truncate("a b\nc  d", 3) == "a b\nc ..."
    assert truncate("a b", 3) == "a b"
    assert truncate("héllo", 2, ByteTokenizer()) == "h\ufffd ..."  # cut inside a UTF-8 character


def test_snippet_cuts_at_word_boundary():
    assert snippet("one two three four", 9) == "one two ..."
    assert snippet("  spaced\n\ntext ", 50) == "spaced text"


def test_caps_on_queries_urls_and_query_length(small_index):
    seen = []

    class Spy:
        def search(self, queries, topk):
            seen.append((list(queries), topk))
            return small_index.search(queries, topk)

        def fetch(self, ids):
            seen.append(list(ids))
            return small_index.fetch(ids)

    cfg = ToolConfig(topk=1, max_queries=2, max_urls=1, max_query_chars=5)
    with ToolSet(Spy(), cfg) as tools:
        s = tools.search(["Rome hills", "Danube", "Paris"])
        v = tools.visit(["d1", "d2"], "g")
    assert seen == [(["Rome ", "Danub"], 1), ["d1"]]
    assert s.text.endswith("(only the first 2 queries were used)")
    assert v.text.endswith("(only the first 1 urls were used)")


def test_batch_sends_all_rows_in_one_backend_call_and_keeps_order(small_index):
    calls = []

    class Spy:
        def search(self, queries, topk):
            calls.append(("search", list(queries), threading.current_thread().name))
            return small_index.search(queries, topk)

        def fetch(self, ids):
            calls.append(("fetch", list(ids), threading.current_thread().name))
            return small_index.fetch(ids)

    batch = [
        ToolCall("search", {"query": ["Paris"]}),
        ToolCall("visit", {"url": ["d5"], "goal": "x"}),
        ToolCall("search", {"query": ["Rome", "Berlin"]}),
        ToolCall("bogus", {}),
    ]
    with ToolSet(Spy(), ToolConfig(topk=1)) as tools:
        res = tools.run_batch(batch)
        solo = [tools.search(["Paris"]).text, tools.visit(["d5"], "x").text, tools.search(["Rome", "Berlin"]).text]
    assert sorted(c[:2] for c in calls[:2]) == [("fetch", ["d5"]), ("search", ["Paris", "Rome", "Berlin"])]
    assert all(c[2].startswith("tools") for c in calls)  # ran on the pool
    assert [r.text for r in res[:3]] == solo
    assert res[3].ok is False and "no such tool" in res[3].text


def test_disabled_tool_is_an_error_result(small_index):
    with ToolSet(small_index, ToolConfig(enabled=("search",))) as tools:
        assert tools.names == ("search",)
        assert tools.visit(["d1"], "g").ok is False


def test_summariser_hook_runs_before_truncation_and_failures_are_reported(small_index):
    def summarise(text, goal):
        if goal == "boom":
            raise RuntimeError("model unavailable")
        return f"[{goal}] " + text.upper()

    with ToolSet(small_index, ToolConfig(page_tokens=3), summarizer=summarise) as tools:
        ok, bad = tools.run_batch([ToolCall("visit", {"url": ["d3"], "goal": "city"}),
                                   ToolCall("visit", {"url": ["d3"], "goal": "boom"})])
    assert ok.text == "Page: Rome (url: d3)\n[city] ROME IS ..."
    assert not bad.ok and "summariser: model unavailable" in bad.text


@pytest.mark.parametrize("kw", [{"topk": 0}, {"workers": 0}, {"enabled": ("search", "browse")}, {"enabled": ()}])
def test_tool_config_validation(kw):
    with pytest.raises(ValueError, match="tools\\."):
        ToolConfig(**kw)


def test_backend_exception_is_error_text(small_index):
    class Broken:
        def search(self, queries, topk):
            raise OSError("disk gone")

        def fetch(self, ids):
            return [None]  # wrong length

    with ToolSet(Broken()) as tools:
        s, v = tools.run_batch([ToolCall("search", {"query": ["a"]}), ToolCall("visit", {"url": ["a", "b"], "goal": ""})])
    assert s.text == "Error: the search tool failed: disk gone. You may retry or answer with what you know."
    assert not v.ok and "returned 1 documents for 2 urls" in v.text


def test_bugs_in_a_backend_or_summariser_propagate_failures_do_not(small_index):
    import http.client

    from egrpo_jax.tools.base import ToolError

    class Backend:
        def __init__(self, exc):
            self.exc = exc

        def search(self, queries, topk):
            raise self.exc

        def fetch(self, ids):
            raise self.exc

    for exc in (ToolError("gave up"), ConnectionResetError("reset"), TimeoutError("slow"),
                http.client.RemoteDisconnected("closed")):
        with ToolSet(Backend(exc)) as tools:
            assert not tools.search(["a"]).ok and not tools.visit(["a"], "g").ok
    for exc in (TypeError("bad arg"), KeyError("doc"), AttributeError("x")):
        with ToolSet(Backend(exc)) as tools:
            with pytest.raises(type(exc)):
                tools.search(["a"])
            with pytest.raises(type(exc)):
                tools.visit(["a"], "g")

    def summarise(text, goal):
        return text[goal]  # a bug: str indices must be integers

    with ToolSet(small_index, summarizer=summarise) as tools:
        with pytest.raises(TypeError):
            tools.visit(["d1"], "g")


def test_only_network_bound_tools_are_remote(small_index):
    """The agent loop overlaps remote calls with decoding and waits for local ones (agent.loop)."""
    from egrpo_jax.tools.http_client import HttpSearchBackend

    with ToolSet(small_index) as local:
        assert local.remote is False
    with ToolSet(HttpSearchBackend("http://127.0.0.1:9/retrieve")) as http:
        assert http.remote is True
    with ToolSet(small_index, summarizer=lambda page, goal: page) as summarised:
        assert summarised.remote is True
