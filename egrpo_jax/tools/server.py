"""A retrieval HTTP server (standard library) exposing a SearchBackend with the Search-R1 API.

  POST /retrieve {"queries": [str], "topk": int, "return_scores": bool}
       -> {"result": [[{"document": {"id", "contents", "title", "url"?}, "score"}]]}
          (without return_scores: [[document, ...]])
  POST /visit    {"urls": [str]} -> {"result": [document | null]}
  GET  /health   -> {"status": "ok", "num_docs": int | null}

Bad requests get a 4xx with {"error": "<what is wrong and what is allowed>"}.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
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
    socket_timeout_s: float = 30.0  # a client that stalls mid-request frees its thread after this

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


def _handler(backend: SearchBackend, lim: ServerLimits, num_docs: int | None):
    class Handler(BaseHTTPRequestHandler):
        timeout = lim.socket_timeout_s
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # route access logs to logging, not stderr
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "ok", "num_docs": num_docs})
            else:
                self._send(404, {"error": f"unknown path {self.path!r}; GET /health, POST /retrieve, POST /visit"})

        def do_POST(self) -> None:
            try:
                route = _ROUTES.get(self.path)
                if route is None:
                    raise BadRequest(404, f"unknown path {self.path!r}; POST /retrieve or /visit")
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    raise BadRequest(411, "a Content-Length header is required")
                if int(length) > lim.max_body_bytes:
                    self.close_connection = True  # do not read the oversized body
                    raise BadRequest(413, f"body of {length} bytes; at most {lim.max_body_bytes}")
                raw = self.rfile.read(int(length))
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise BadRequest(400, "body is not valid JSON") from None
                if not isinstance(body, dict):
                    raise BadRequest(400, "body must be a JSON object")
                self._send(200, route(backend, body, lim))
            except BadRequest as e:
                self._send(e.status, {"error": str(e)})
            except Exception as e:
                log.exception("retrieval request failed")
                self._send(500, {"error": f"internal error: {type(e).__name__}: {e}"})

    return Handler


def make_server(
    backend: SearchBackend, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits | None = None
) -> ThreadingHTTPServer:
    """A bound, not yet serving server; port 0 picks a free port (see server.server_address)."""
    num_docs = len(backend) if hasattr(backend, "__len__") else None
    server = ThreadingHTTPServer((host, port), _handler(backend, limits or ServerLimits(), num_docs))
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve until server.shutdown(); for tests and embedding in a trainer process."""
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return t
