"""HTTP search backend speaking the Search-R1 retrieval API (plus our /visit endpoint).

POST {base}/retrieve {"queries": [...], "topk": k, "return_scores": true}
  -> {"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}   contents = '"Title"\\ntext'
POST {base}/visit {"urls": [...]} -> {"result": [{"id", "contents", "title"?, "url"?} | null, ...]}

Transport faults (connection refused, timeouts, 5xx) are retried with exponential backoff; a 4xx
or a malformed reply is not. A final failure raises ToolError, which the ToolSet turns into
error text inside <tool_response>.
"""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Any

from egrpo_jax.tools.base import Hit, ToolError


def parse_contents(contents: str) -> tuple[str, str]:
    """Split Search-R1 `contents` ('"Title"\\ntext') into (title, text)."""
    head, sep, rest = contents.partition("\n")
    if not sep:
        return "", contents
    return head.strip().strip('"'), rest


def _doc_to_hit(doc: Any, score: float) -> Hit:
    if not isinstance(doc, dict) or "contents" not in doc:
        raise ToolError(f"retrieval server sent a document without 'contents': {str(doc)[:100]}")
    title, text = parse_contents(str(doc["contents"]))
    title = str(doc.get("title") or title)
    url = doc.get("url")
    try:
        score = float(score)
    except (TypeError, ValueError):  # the server's data, not our bug
        raise ToolError(f"retrieval server sent a score that is not a number: {str(score)[:40]}") from None
    return Hit(doc_id=str(doc.get("id", "")), title=title, text=text, score=score,
               url=None if url is None else str(url))


class HttpSearchBackend:
    """SearchBackend over HTTP. `url` is the server base (a trailing /retrieve is accepted)."""

    remote = True  # the agent loop overlaps its calls with decoding (ToolSet.remote)

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_batch: int = 64,  # queries / urls per request (our server accepts up to 512 / 64)
        workers: int = 4,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"search url must start with http:// or https://, got {url!r}")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or max_batch < 1 or workers < 1:
            raise ValueError(
                "HttpSearchBackend needs timeout_s > 0, retries >= 0, backoff_s >= 0, max_batch >= 1, workers >= 1"
            )
        base = url.rstrip("/")
        self.base = base.removesuffix("/retrieve")
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.max_batch = max_batch
        self._pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="http-search")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- transport ---------------------------------------------------------------------------
    def _post_once(self, path: str, payload: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.base + path, data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            body = resp.read()
        try:
            return json.loads(body)
        except ValueError:
            raise ToolError(f"{self.base}{path} sent a reply that is not JSON: {body[:100]!r}") from None

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                return self._post_once(path, payload)
            except urllib.error.HTTPError as e:
                detail = _error_text(e)
                if e.code < 500:  # the request itself is wrong: retrying will not help
                    raise ToolError(f"{self.base}{path} rejected the request (HTTP {e.code}): {detail}") from None
                last = f"HTTP {e.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                last = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
        raise ToolError(f"{self.base}{path} failed after {self.retries + 1} attempts ({last})")

    # ---- SearchBackend -----------------------------------------------------------------------
    def _retrieve(self, queries: list[str], topk: int) -> list[list[Hit]]:
        reply = self.post("/retrieve", {"queries": queries, "topk": topk, "return_scores": True})
        result = reply.get("result") if isinstance(reply, dict) else None
        if not isinstance(result, list) or len(result) != len(queries):
            raise ToolError(f"{self.base}/retrieve: expected 'result' with {len(queries)} lists, got {str(reply)[:100]}")
        out = []
        for row in result:
            hits = []
            for item in row if isinstance(row, list) else []:
                if isinstance(item, dict) and "document" in item:
                    hits.append(_doc_to_hit(item["document"], item.get("score", 0.0)))
                else:  # return_scores=false style: the document itself
                    hits.append(_doc_to_hit(item, 0.0))
            out.append(hits)
        return out

    def _chunked(self, fn, items: list[str]) -> list:
        """fn over chunks of at most max_batch items (server size limits), concurrently, in order."""
        items = list(items)
        if not items:
            return []
        chunks = [items[i : i + self.max_batch] for i in range(0, len(items), self.max_batch)]
        if len(chunks) == 1:
            return fn(chunks[0])
        return [x for part in self._pool.map(fn, chunks) for x in part]

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        return self._chunked(lambda c: self._retrieve(c, topk), queries)

    def _visit(self, ids: list[str]) -> list[Hit | None]:
        reply = self.post("/visit", {"urls": ids})
        result = reply.get("result") if isinstance(reply, dict) else None
        if not isinstance(result, list) or len(result) != len(ids):
            raise ToolError(f"{self.base}/visit: expected 'result' with {len(ids)} entries, got {str(reply)[:100]}")
        return [None if doc is None else _doc_to_hit(doc, 0.0) for doc in result]

    def fetch(self, ids: list[str]) -> list[Hit | None]:
        return self._chunked(self._visit, ids)


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        body = e.read()
        obj = json.loads(body)
        return str(obj.get("error", obj))[:200] if isinstance(obj, dict) else str(obj)[:200]
    except Exception:  # noqa: BLE001 - any unreadable body: fall back to the status reason
        return str(e.reason)[:200]
