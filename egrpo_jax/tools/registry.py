"""ToolSet: runs a batch of parsed tool calls from many rows against one search backend.

All search queries of a batch go to the backend in one `search` call, all visited urls in one
`fetch` call; the two (and any summariser calls) run concurrently on a thread pool. A backend
*failure* (TOOL_FAILURES: transport, server and tool errors) never raises: the affected calls get
error text (ok=False) and the rollout continues. Anything else (TypeError, KeyError, ...) is a bug
and propagates: as error text it would train the policy on our own mistakes.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import http.client
import os
import time
from collections.abc import Sequence
from typing import Any, Self

from egrpo_jax.tokenizer_api import TokenizerLike
from egrpo_jax.tools.base import Hit, SearchBackend, ToolError
from egrpo_jax.tools.search import format_search
from egrpo_jax.tools.visit import Summarizer, format_page, truncate

TOOL_NAMES = ("search", "visit")
# What a backend or summariser raises when the service fails (network, server, its own ToolError;
# RuntimeError: client libraries' "model unavailable" style faults). Everything else propagates.
TOOL_FAILURES = (ToolError, OSError, http.client.HTTPException, RuntimeError)


@dataclasses.dataclass(frozen=True)
class ToolConfig:
    topk: int = 10  # hits per query (paper: 10)
    snippet_chars: int = 200  # characters of each hit's text shown by search
    page_tokens: int = 1024  # token budget of each visited page
    max_queries: int = 5  # queries per search call; extra ones are dropped with a note
    max_urls: int = 3  # urls per visit call; extra ones are dropped with a note
    max_query_chars: int = 300  # longer queries are cut (keeps one runaway query from failing a batch)
    workers: int = 8  # thread pool size
    enabled: tuple[str, ...] = TOOL_NAMES

    def __post_init__(self) -> None:
        for key in ("topk", "snippet_chars", "page_tokens", "max_queries", "max_urls", "max_query_chars",
                    "workers"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"tools.{key} must be >= 1, got {getattr(self, key)}")
        bad = [t for t in self.enabled if t not in TOOL_NAMES]
        if bad or not self.enabled:
            raise ValueError(f"tools.enabled must be a non-empty subset of {TOOL_NAMES}, got {list(self.enabled)}")


@dataclasses.dataclass
class ToolResult:
    text: str  # goes inside <tool_response>
    ok: bool
    latency_s: float  # wall time of the backend batch this call was part of (+ its summariser)
    error: str | None = None


def error_text(name: str, message: str) -> str:
    return f"Error: the {name} tool failed: {message}. You may retry or answer with what you know."


def _capped(values: list[str], limit: int, what: str) -> tuple[list[str], str]:
    if len(values) <= limit:
        return values, ""
    return values[:limit], f"(only the first {limit} {what} were used)"


class ToolSet:
    def __init__(
        self,
        backend: SearchBackend,
        cfg: ToolConfig | None = None,
        *,
        tokenizer: TokenizerLike | None = None,
        summarizer: Summarizer | None = None,
    ):
        self.backend = backend
        self.cfg = cfg or ToolConfig()
        self.tokenizer = tokenizer  # for the page token budget; whitespace words without one
        self.summarizer = summarizer
        self._pool = cf.ThreadPoolExecutor(self.cfg.workers, thread_name_prefix="tools")
        # Summaries get their own pool: batch tasks on _pool wait on them (no nested-pool deadlock).
        self._sum_pool = cf.ThreadPoolExecutor(self.cfg.workers, thread_name_prefix="summarise") if summarizer else None

    @property
    def names(self) -> tuple[str, ...]:
        return self.cfg.enabled

    @property
    def remote(self) -> bool:
        """Calls wait on a network (an HTTP backend or a summariser): the agent loop overlaps them
        with decoding instead of waiting for them."""
        return bool(getattr(self.backend, "remote", False)) or self.summarizer is not None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._sum_pool is not None:
            self._sum_pool.shutdown(wait=True)
        if hasattr(self.backend, "close"):
            self.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- batched execution --------------------------------------------------------------------
    def run_batch(self, calls: Sequence[Any]) -> list[ToolResult]:
        """Execute parsed calls (objects with .name and .arguments, e.g. agent.parse.ToolCall)."""
        results: list[ToolResult | None] = [None] * len(calls)
        groups: dict[str, list[int]] = {"search": [], "visit": []}
        for i, c in enumerate(calls):
            if c.name in groups and c.name in self.names:
                groups[c.name].append(i)
            else:
                results[i] = ToolResult(error_text(str(c.name), "no such tool"), False, 0.0, "unknown tool")
        run = {"search": self._search_batch, "visit": self._visit_batch}
        futures = {
            name: self._pool.submit(run[name], [calls[i] for i in idx]) for name, idx in groups.items() if idx
        }
        for name, fut in futures.items():  # the batch functions raise only bugs: re-raised here
            for i, r in zip(groups[name], fut.result(), strict=True):
                results[i] = r
        return results  # type: ignore[return-value]

    def search(self, queries: list[str]) -> ToolResult:
        return self.run_batch([_Call("search", {"query": list(queries)})])[0]

    def visit(self, urls: list[str], goal: str) -> ToolResult:
        return self.run_batch([_Call("visit", {"url": list(urls), "goal": goal})])[0]

    def _search_batch(self, calls: list[Any]) -> list[ToolResult]:
        per_call = [_capped([q[: self.cfg.max_query_chars] for q in c.arguments["query"]],
                            self.cfg.max_queries, "queries") for c in calls]
        flat = [q for qs, _ in per_call for q in qs]
        t0 = time.perf_counter()
        try:
            hits = self.backend.search(flat, self.cfg.topk)
            if len(hits) != len(flat):
                raise ToolError(f"backend returned {len(hits)} result lists for {len(flat)} queries")
        except TOOL_FAILURES as e:
            dt = time.perf_counter() - t0
            msg = str(e) or type(e).__name__
            return [ToolResult(error_text("search", msg), False, dt, msg) for _ in calls]
        dt = time.perf_counter() - t0
        out, pos = [], 0
        for qs, note in per_call:
            part = hits[pos : pos + len(qs)]
            pos += len(qs)
            out.append(ToolResult(format_search(qs, part, self.cfg.snippet_chars, note), True, dt))
        return out

    def _page(self, address: str, hit: Hit | None, goal: str) -> str:
        if hit is None:
            return format_page(address, None, None)
        text = hit.text
        if self.summarizer is not None:
            text = self.summarizer(text, goal)
        return format_page(address, hit, truncate(text, self.cfg.page_tokens, self.tokenizer))

    def _visit_batch(self, calls: list[Any]) -> list[ToolResult]:
        per_call = [_capped(list(c.arguments["url"]), self.cfg.max_urls, "urls") for c in calls]
        flat = [u for us, _ in per_call for u in us]
        t0 = time.perf_counter()
        try:
            docs = self.backend.fetch(flat)
            if len(docs) != len(flat):
                raise ToolError(f"backend returned {len(docs)} documents for {len(flat)} urls")
        except TOOL_FAILURES as e:
            dt = time.perf_counter() - t0
            msg = str(e) or type(e).__name__
            return [ToolResult(error_text("visit", msg), False, dt, msg) for _ in calls]
        fetch_dt = time.perf_counter() - t0
        jobs, pos = [], 0
        for c, (us, note) in zip(calls, per_call, strict=True):
            goal = str(c.arguments.get("goal", ""))
            pairs = list(zip(us, docs[pos : pos + len(us)], strict=True))
            pos += len(us)
            if self._sum_pool is not None:
                jobs.append((self._sum_pool.submit(self._pages, pairs, goal, note), None))
            else:
                jobs.append((None, (pairs, goal, note)))
        out = []
        for fut, args in jobs:
            try:
                text, page_dt = fut.result() if fut is not None else self._pages(*args)
            except TOOL_FAILURES as e:  # a failing summariser is a failed visit
                msg = f"summariser: {e}" if str(e) else f"summariser: {type(e).__name__}"
                out.append(ToolResult(error_text("visit", msg), False, fetch_dt, msg))
                continue
            out.append(ToolResult(text, True, fetch_dt + page_dt))
        return out

    def _pages(self, pairs: list[tuple[str, Hit | None]], goal: str, note: str) -> tuple[str, float]:
        t0 = time.perf_counter()
        text = "\n\n".join([self._page(u, d, goal) for u, d in pairs] + ([note] if note else []))
        return text, time.perf_counter() - t0


@dataclasses.dataclass(frozen=True)
class _Call:
    name: str
    arguments: dict[str, Any]


def open_index(index_dir: str, *, encoder: Any = None) -> SearchBackend:
    """An index folder of any kind (bm25 / dense / hybrid, read from its meta.json). `encoder`
    (a folder or SentenceEncoder) replaces the dense encoder folder named in meta.json."""
    from egrpo_jax.tools.index_folder import folder_kind

    kind = folder_kind(index_dir)
    if kind == "bm25":
        from egrpo_jax.tools.bm25 import Bm25Index

        if encoder is not None:
            raise ValueError(f"{index_dir}: a bm25 index takes no encoder")
        return Bm25Index.load(index_dir)
    if kind == "dense":
        from egrpo_jax.tools.dense import DenseIndex

        return DenseIndex.load(index_dir, encoder)
    from egrpo_jax.tools.hybrid import HybridIndex

    return HybridIndex.load(index_dir, encoder)


def open_backend(spec: str, *, encoder: Any = None, **http_kw: Any) -> SearchBackend:
    """A backend from a spec: an http(s) url (Search-R1 server), an index folder of any kind, or a
    corpus .jsonl (indexed with BM25 on the spot; dense indexes are built once with `egrpo index`)."""
    if spec.startswith(("http://", "https://")):
        from egrpo_jax.tools.http_client import HttpSearchBackend

        return HttpSearchBackend(spec, **http_kw)
    if os.path.isdir(spec):
        return open_index(spec, encoder=encoder)
    if os.path.isfile(spec) and spec.endswith(".jsonl"):
        from egrpo_jax.tools.bm25 import Bm25Index

        return Bm25Index.from_corpus(spec)
    raise ValueError(f"search backend {spec!r}: expected an http(s):// url, an index folder or a corpus .jsonl")
