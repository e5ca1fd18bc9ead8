"""The search server under hostile input and load (loopback only, bounded): 4xx JSON for every bad
request, the connection closed after it, and 64 concurrent clients served without a reset."""

import http.client
import json
import socket
import threading

import pytest

from egrpo_jax.tools.server import ServerLimits, make_server, serve_in_thread

TIMEOUT_S = 0.5  # the server's socket timeout here: a stalled body is answered 408 after it
BODY = json.dumps({"queries": ["Paris"], "topk": 1}).encode()


@pytest.fixture()
def addr(small_index):
    srv = make_server(small_index, port=0, limits=ServerLimits(socket_timeout_s=TIMEOUT_S))
    serve_in_thread(srv)
    yield srv.server_address[:2]
    srv.shutdown()
    srv.server_close()


def _exchange(addr, data: bytes, *, shut_write: bool = False) -> list[tuple[int, dict, dict]]:
    """Send raw bytes, read until the server closes; every response as (status, headers, JSON body)."""
    s = socket.create_connection(addr, timeout=10)  # far above TIMEOUT_S: the server must close first
    s.sendall(data)
    if shut_write:
        s.shutdown(socket.SHUT_WR)  # the client is done sending (its body is short)
    raw = b""
    while chunk := s.recv(65536):
        raw += chunk
    s.close()
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        n = int(headers["content-length"])
        out.append((int(lines[0].split()[1]), headers, json.loads(rest[:n])))
        raw = rest[n:]
    return out


def _post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


def test_deeply_nested_json_is_400(addr):
    deep = b"[" * 100_000 + b"]" * 100_000
    ((status, headers, body),) = _exchange(addr, _post(b"/retrieve", deep))
    assert (status, body) == (400, {"error": "body nests too deeply"})
    assert headers["connection"] == "close" and headers["content-type"] == "application/json"


def test_body_shorter_than_its_length(addr):
    head = b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b'{"queries":'
    ((status, _, body),) = _exchange(addr, head, shut_write=True)  # the client gave up
    assert status == 400 and body["error"] == "body of 11 bytes is shorter than its length 100"
    ((status, _, body),) = _exchange(addr, head)  # the client stalls: answered after the socket timeout
    assert status == 408 and body["error"] == f"the body did not arrive within {TIMEOUT_S:g} s"


def test_chunked_bodies_are_read_and_their_bytes_never_parsed_as_a_request(addr):
    chunked = (b"POST /retrieve HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % 10 + BODY[:10] + b"\r\n" + b"%x\r\n" % (len(BODY) - 10) + BODY[10:] + b"\r\n0\r\n\r\n")
    (s1, _, b1), (s2, _, b2) = _exchange(addr, chunked + _post(b"/visit", b'{"urls": ["d1"]}', b"Connection: close\r\n"))
    assert (s1, b1["result"][0][0]["id"]) == (200, "d1")
    assert (s2, b2["result"][0]["id"]) == (200, "d1")  # keep-alive: the request after a chunked body is served
    # a bad chunk is a 400 and the connection closes: the rest of the bytes are never a request
    bad = b"POST /retrieve HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + _post(b"/visit", b"{}")
    ((status, headers, body),) = _exchange(addr, bad)
    assert status == 400 and body["error"].startswith("bad chunk size line") and headers["connection"] == "close"
    gzip = b"POST /retrieve HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + _post(b"/visit", b"{}")
    assert [s for s, _, _ in _exchange(addr, gzip)] == [501]


def test_error_responses_close_the_connection(addr):
    # a 4xx followed by more bytes on the same connection: one JSON error, then the server closes
    for first in (_post(b"/retrieve", b"{not json"), _post(b"/nope", b"{}"),
                  b"POST /retrieve HTTP/1.1\r\nHost: x\r\n\r\n" + BODY):
        responses = _exchange(addr, first + _post(b"/retrieve", BODY))
        assert len(responses) == 1 and 400 <= responses[0][0] < 500, responses
        assert responses[0][1]["connection"] == "close" and "error" in responses[0][2]


@pytest.mark.parametrize("method", [b"DELETE", b"PUT", b"PATCH", b"OPTIONS", b"BREW"])
def test_other_methods_are_405_json(addr, method):
    ((status, headers, body),) = _exchange(addr, method + b" /retrieve HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405 and headers["allow"] == "POST" and headers["content-type"] == "application/json"
    assert body["error"].startswith(f"method {method.decode()} is not allowed")
    ((status, headers, _),) = _exchange(addr, b"GET /visit HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405 and headers["allow"] == "POST"


def test_garbage_request_line_is_json_400(addr):
    ((status, headers, body),) = _exchange(addr, b"\x00\x01garbage\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json" and body["error"]


def test_64_concurrent_clients_are_all_served(addr):
    """64 clients x 20 requests, a new connection each (as the HTTP backend makes them): no reset."""
    results: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(64)

    def client():
        start.wait()
        for _ in range(20):
            try:
                c = http.client.HTTPConnection(*addr, timeout=30)
                c.request("POST", "/retrieve", body=BODY, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                out = (r.status, json.loads(r.read())["result"][0][0]["id"])
                c.close()
            except Exception as e:  # noqa: BLE001 - counted and shown below
                out = type(e).__name__
            with lock:
                results.append(out)

    threads = [threading.Thread(target=client) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 64 * 20
    assert [r for r in results if r != (200, "d1")] == []
