"""The search-backend contract shared by the in-process BM25 index and the HTTP client."""

from __future__ import annotations

import dataclasses
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class Hit:
    doc_id: str
    title: str
    text: str  # full document text (tools cut snippets / pages from it)
    score: float
    url: str | None = None


class SearchBackend(Protocol):
    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        """Top-k hits per query, best first. May raise on transport failure (tools handle it)."""

    def fetch(self, ids: list[str]) -> list[Hit | None]:
        """Whole documents by id or url; None where unknown."""


class ToolError(Exception):
    """A tool failed for good (after retries); the message goes into <tool_response>."""
