"""HTTP client <-> our server on a free local port, and fault handling (short timeouts: never hangs)."""

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from procs import free_port

from egrpo_jax.agent.parse import ToolCall
from egrpo_jax.tools.base import ToolError
from egrpo_jax.tools.http_client import HttpSearchBackend, parse_contents
from egrpo_jax.tools.registry import ToolConfig, ToolSet
from egrpo_jax.tools.server import ServerLimits, make_server, serve_in_thread


@pytest.fixture()
def server(small_index):
    srv = make_server(small_index, port=0, limits=ServerLimits(max_queries=8, max_topk=5, default_topk=3, max_body_bytes=4096))
    serve_in_thread(srv)
    yield "http://{}:{}".format(*srv.server_address[:2])
    srv.shutdown()
    srv.server_close()


def _post(url, payload, raw=None):
    data = raw if raw is not None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_retrieve_speaks_search_r1_format(server, small_index):
    status, body = _post(server + "/retrieve", {"queries": ["capital of Germany", "zzzz"], "topk": 2,
                                                "return_scores": True})
    assert status == 200
    first = body["result"][0][0]
    assert first["document"]["id"] == "d2"
    assert first["document"]["contents"] == '"Berlin"\nBerlin is the capital of Germany and its largest city.'
    assert first["score"] == pytest.approx(small_index.search(["capital of Germany"], 2)[0][0].score)
    assert body["result"][1] == []
    status, body = _post(server + "/retrieve", {"queries": ["Rome"], "topk": 1})  # no scores: bare documents
    assert status == 200 and body["result"][0][0]["id"] == "d3"


@pytest.mark.parametrize("payload,status,msg", [
    ({"topk": 2}, 400, "missing field 'queries'"),
    ({"queries": "Paris"}, 400, "non-empty list of strings"),
    ({"queries": []}, 400, "non-empty list of strings"),
    ({"queries": ["a"] * 9}, 413, "at most 8"),
    ({"queries": ["a"], "topk": 0}, 400, "topk' must be an integer in [1, 5]"),
    ({"queries": ["a"], "topk": 6}, 400, "in [1, 5]"),
    ({"queries": ["a"], "topk": True}, 400, "topk"),
    ({"queries": ["a"], "return_scores": "yes"}, 400, "return_scores"),
    ({"queries": ["x" * 1001]}, 400, "at most 1000"),
])
def test_retrieve_validates_input(server, payload, status, msg):
    got, body = _post(server + "/retrieve", payload)
    assert got == status and msg in body["error"]


def test_server_rejects_bad_json_big_bodies_and_unknown_paths(server):
    assert _post(server + "/retrieve", None, raw=b"{not json")[0] == 400
    got, body = _post(server + "/retrieve", None, raw=b" " * 5000)
    assert got == 413 and "at most 4096" in body["error"]
    assert _post(server + "/nope", {"queries": ["a"]})[0] == 404
    with urllib.request.urlopen(server + "/health", timeout=5) as r:
        assert json.loads(r.read()) == {"status": "ok", "num_docs": 5}


def test_client_against_our_server(server, small_index):
    client = HttpSearchBackend(server + "/retrieve", timeout_s=5, max_batch=2)
    qs = ["capital of France", "Danube", "river Seine", "Rome hills", "qqqq"]
    got = client.search(qs, 3)  # 3 chunks, sent concurrently, reassembled in order
    want = small_index.search(qs, 3)
    assert [[(h.doc_id, h.title, h.text, h.url) for h in hs] for hs in got] == \
           [[(h.doc_id, h.title, h.text, h.url) for h in hs] for hs in want]
    a, b, c = client.fetch(["https://wiki.example/Berlin", "missing", "d4"])  # 2 chunks
    assert (a.doc_id, a.title, b, c.doc_id) == ("d2", "Berlin", None, "d4")
    client.close()


def test_parse_contents_search_r1_style():
    assert parse_contents('"Albert Einstein"\nwas a physicist.\nMore.') == ("Albert Einstein", "was a physicist.\nMore.")
    assert parse_contents("no title line") == ("", "no title line")


class _Faulty(BaseHTTPRequestHandler):
    mode = "500"
    hits = 0

    def log_message(self, *a):
        pass

    def do_POST(self):
        type(self).hits += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.mode == "hang":
            self.server.release.wait(5)  # longer than the client's timeout; released at teardown
            return
        self.send_response(500)
        body = b'{"error": "index exploded"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def faulty():
    servers = []

    def make(mode):
        handler = type("H", (_Faulty,), {"mode": mode, "hits": 0})
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        srv.release = threading.Event()
        serve_in_thread(srv)
        servers.append(srv)
        return "http://{}:{}".format(*srv.server_address[:2]), handler

    yield make
    for s in servers:
        s.release.set()
        s.shutdown()
        s.server_close()


def test_500_is_retried_then_reported(faulty):
    url, handler = faulty("500")
    client = HttpSearchBackend(url, timeout_s=2, retries=2, backoff_s=0.01)
    with pytest.raises(ToolError, match=r"failed after 3 attempts \(HTTP 500: index exploded\)"):
        client.search(["a"], 3)
    assert handler.hits == 3


@pytest.mark.parametrize("mode", ["500", "hang", "down"])
def test_tool_failure_becomes_error_text_not_exception(faulty, mode):
    url = f"http://127.0.0.1:{free_port()}" if mode == "down" else faulty(mode)[0]
    tools = ToolSet(HttpSearchBackend(url, timeout_s=0.3, retries=1, backoff_s=0.01), ToolConfig(topk=3))
    res = tools.run_batch([ToolCall("search", {"query": ["Paris"]}), ToolCall("visit", {"url": ["d1"], "goal": "g"}),
                           ToolCall("search", {"query": ["Rome"]})])
    tools.close()
    assert [r.ok for r in res] == [False, False, False]
    for r, name in zip(res, ["search", "visit", "search"]):
        assert r.text.startswith(f"Error: the {name} tool failed: ")
        assert "failed after 2 attempts" in r.text
    if mode == "hang":
        assert "timed out" in res[0].text
    if mode == "down":
        assert "Connection" in res[0].text or "refused" in res[0].text.lower()


def test_transient_500_is_retried_to_success(small_index):
    real = make_server(small_index, port=0)
    serve_in_thread(real)
    real_url = "http://{}:{}".format(*real.server_address[:2])

    class FlakyOnce(_Faulty):
        def do_POST(self):
            if type(self).hits == 0:
                return super().do_POST()  # first attempt: 500 (counts the hit)
            type(self).hits += 1
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = urllib.request.Request(real_url + self.path, data=body, method="POST")
            with urllib.request.urlopen(req, timeout=5) as r:
                data = r.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    flaky = ThreadingHTTPServer(("127.0.0.1", 0), type("F", (FlakyOnce,), {"hits": 0, "mode": "500"}))
    serve_in_thread(flaky)
    try:
        client = HttpSearchBackend("http://{}:{}".format(*flaky.server_address[:2]), timeout_s=5, retries=2, backoff_s=0.01)
        (hits,) = client.search(["capital of Germany"], 1)
        assert hits[0].doc_id == "d2" and flaky.RequestHandlerClass.hits == 2
    finally:
        for s in (flaky, real):
            s.shutdown()
            s.server_close()


def test_serve_search_command_end_to_end(tmp_path, small_docs):
    import subprocess
    import sys

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in small_docs))
    proc = subprocess.Popen([sys.executable, "-m", "egrpo_jax.cli", "serve-search", "--index", str(corpus),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # "serving 5 documents on http://127.0.0.1:PORT ..."
        assert line.startswith("serving 5 documents on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[4]
        client = HttpSearchBackend(url, timeout_s=5)
        assert client.search(["Vienna Budapest"], 1)[0][0].doc_id == "d5"
        assert client.fetch(["d1"])[0].title == "Paris"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
