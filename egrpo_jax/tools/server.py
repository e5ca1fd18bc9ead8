"""A retrieval HTTP server (standard library) exposing a SearchBackend with the Search-R1 API.

  POST /retrieve {"queries": [str], "topk": int, "return_scores": bool}
       -> {"result": [[{"document": {"id", "contents", "title", "url"?}, "score"}]]}
          (without return_scores: [[document, ...]])
  POST /visit    {"urls": [str]} -> {"result": [document | null]}
  GET  /health   -> {"status": "ok", "num_docs": int | null}

Every bad request gets a 4xx with {"error": "<what is wrong and what is allowed>"} and the
connection is closed after it (its unread bytes are never parsed as a next request): malformed
or too deeply nested JSON 400, a body shorter than its Content-Length 400 (the client closed) or
408 (it stalled past socket_timeout_s), no length 411, too large 413, other methods 405. Bodies
may be sent with Content-Length or chunked. Connections are served by a bounded pool of
`workers` threads behind a `backlog`-deep listen queue, so bursts queue instead of being reset.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import logging
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from egrpo_jax.tools.base import Hit, SearchBackend

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    max_body_bytes: int = 1 << 20
    max_queries: int = 512
    max_query_chars: int = 1000
    max_topk: int = 100
    default_topk: int = 10
    max_urls: int = 64
    socket_timeout_s: float = 10.0  # a client that stalls mid-request (or idles) frees its worker after this
    workers: int = 64  # connections served at once; more wait in the listen queue, never reset
    backlog: int = 256  # listen queue length

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"server limit {f.name} must be > 0, got {getattr(self, f.name)}")
        if self.default_topk > self.max_topk:
            raise ValueError(f"default_topk ({self.default_topk}) must be <= max_topk ({self.max_topk})")


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def document(hit: Hit) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": hit.doc_id, "contents": f'"{hit.title}"\n{hit.text}', "title": hit.title}
    if hit.url is not None:
        doc["url"] = hit.url
    return doc


def _str_list(body: dict[str, Any], key: str, max_items: int, max_chars: int) -> list[str]:
    if key not in body:
        raise BadRequest(400, f"missing field {key!r}: a list of 1..{max_items} strings")
    v = body[key]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise BadRequest(400, f"field {key!r} must be a non-empty list of strings")
    if len(v) > max_items:
        raise BadRequest(413, f"field {key!r} has {len(v)} items; at most {max_items} per request")
    for i, x in enumerate(v):
        if len(x) > max_chars:
            raise BadRequest(400, f"{key}[{i}] has {len(x)} characters; at most {max_chars}")
    return v


def handle_retrieve(backend: SearchBackend, body: dict[str, Any], lim: ServerLimits) -> dict[str, Any]:
    queries = _str_list(body, "queries", lim.max_queries, lim.max_query_chars)
    topk = body.get("topk", lim.default_topk)
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= lim.max_topk:
        raise BadRequest(400, f"field 'topk' must be an integer in [1, {lim.max_topk}], got {topk!r}")
    scores = body.get("return_scores", False)
    if not isinstance(scores, bool):
        raise BadRequest(400, f"field 'return_scores' must be true or false, got {scores!r}")
    results = backend.search(queries, topk)
    if scores:
        return {"result": [[{"document": document(h), "score": h.score} for h in hits] for hits in results]}
    return {"result": [[document(h) for h in hits] for hits in results]}


def handle_visit(backend: SearchBackend, body: dict[str, Any], lim: ServerLimits) -> dict[str, Any]:
    urls = _str_list(body, "urls", lim.max_urls, lim.max_query_chars)
    return {"result": [None if h is None else document(h) for h in backend.fetch(urls)]}


_ROUTES = {"/retrieve": handle_retrieve, "/visit": handle_visit}


_ALLOWED = {"/health": "GET", "/retrieve": "POST", "/visit": "POST"}


def _handler(backend: SearchBackend, lim: ServerLimits, num_docs: int | None):
    class Handler(BaseHTTPRequestHandler):
        timeout = lim.socket_timeout_s
        protocol_version = "HTTP/1.1"
        default_request_version = "HTTP/1.1"  # a garbage request line still gets a status line and headers

        def log_message(self, fmt: str, *args: Any) -> None:  # route access logs to logging, not stderr
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if status >= 400:  # what is left of a bad request must never be read as the next one
                self.close_connection = True
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The standard library's own errors (bad request line, huge headers, unknown method) as JSON."""
            headers = {}
            if code == HTTPStatus.NOT_IMPLEMENTED:  # a method we have no do_* for
                code, message = 405, f"method {self.command} is not allowed; GET /health, POST /retrieve, POST /visit"
                headers["Allow"] = _ALLOWED.get(getattr(self, "path", ""), "GET, POST")
            try:
                self._send(int(code), {"error": message or HTTPStatus(code).phrase}, headers)
            except OSError:  # the client is gone
                self.close_connection = True

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "ok", "num_docs": num_docs})
            elif self.path in _ALLOWED:
                self._send(405, {"error": f"{self.path} takes POST"}, {"Allow": _ALLOWED[self.path]})
            else:
                self._send(404, {"error": f"unknown path {self.path!r}; GET /health, POST /retrieve, POST /visit"})

        def _body(self) -> bytes:
            chunked = self.headers.get("Transfer-Encoding", "").lower()
            if chunked:
                if chunked != "chunked":
                    raise BadRequest(501, f"Transfer-Encoding {chunked!r} is not supported (chunked is)")
                return self._read_chunked()
            length = self.headers.get("Content-Length")
            if length is None or not length.strip().isdigit():
                raise BadRequest(411, "a Content-Length header (or Transfer-Encoding: chunked) is required")
            n = int(length)
            if n > lim.max_body_bytes:
                raise BadRequest(413, f"body of {n} bytes; at most {lim.max_body_bytes}")
            return self._read_exactly(n)

        def _read_exactly(self, n: int) -> bytes:
            try:
                raw = self.rfile.read(n)
            except TimeoutError:  # socket.timeout: the client stalled mid-body
                raise BadRequest(408, f"the body did not arrive within {lim.socket_timeout_s:g} s") from None
            if len(raw) < n:
                raise BadRequest(400, f"body of {len(raw)} bytes is shorter than its length {n}")
            return raw

        def _read_chunked(self) -> bytes:
            parts, total = [], 0
            while True:
                try:
                    line = self.rfile.readline(1024)
                except TimeoutError:
                    raise BadRequest(408, f"the body did not arrive within {lim.socket_timeout_s:g} s") from None
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadRequest(400, f"bad chunk size line {line[:40]!r}") from None
                if size == 0:
                    break
                total += size
                if total > lim.max_body_bytes:
                    raise BadRequest(413, f"chunked body over {lim.max_body_bytes} bytes")
                parts.append(self._read_exactly(size))
                if self._read_exactly(2) != b"\r\n":
                    raise BadRequest(400, "a chunk must end with CRLF")
            while True:  # trailer lines up to the blank line
                try:
                    line = self.rfile.readline(1024)
                except TimeoutError:
                    raise BadRequest(408, f"the body did not arrive within {lim.socket_timeout_s:g} s") from None
                if line in (b"\r\n", b"\n", b""):
                    return b"".join(parts)

        def do_POST(self) -> None:
            try:
                route = _ROUTES.get(self.path)
                if route is None:
                    if self.path in _ALLOWED:
                        raise BadRequest(405, f"{self.path} takes GET")
                    raise BadRequest(404, f"unknown path {self.path!r}; POST /retrieve or /visit")
                raw = self._body()
                try:
                    body = json.loads(raw)
                except RecursionError:
                    raise BadRequest(400, "body nests too deeply") from None
                except ValueError:
                    raise BadRequest(400, "body is not valid JSON") from None
                if not isinstance(body, dict):
                    raise BadRequest(400, "body must be a JSON object")
                self._send(200, route(backend, body, lim))
            except BadRequest as e:
                headers = {"Allow": _ALLOWED[self.path]} if e.status == 405 else None
                self._send(e.status, {"error": str(e)}, headers)
            except Exception as e:
                log.exception("retrieval request failed")
                self._send(500, {"error": f"internal error: {type(e).__name__}: {e}"})

    return Handler


class SearchServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a deep listen queue and a bounded worker pool (not a thread per
    connection): a burst of clients waits to be served instead of being reset."""

    daemon_threads = True

    def __init__(self, address, handler, limits: ServerLimits):
        self.request_queue_size = limits.backlog  # read by server_activate (listen)
        self._pool = cf.ThreadPoolExecutor(limits.workers, thread_name_prefix="search-http")
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address) -> None:
        self._pool.submit(self.process_request_thread, request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def handle_error(self, request, client_address) -> None:
        # a client that hangs up mid-response is routine; anything else is logged with its traceback
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("connection from %s failed", client_address, exc_info=True)
        else:
            log.exception("connection from %s failed", client_address)


def make_server(
    backend: SearchBackend, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits | None = None
) -> SearchServer:
    """A bound, not yet serving server; port 0 picks a free port (see server.server_address)."""
    num_docs = len(backend) if hasattr(backend, "__len__") else None
    limits = limits or ServerLimits()
    return SearchServer((host, port), _handler(backend, limits, num_docs), limits)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve until server.shutdown(); for tests and embedding in a trainer process."""
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return t
