"""The `visit` tool's text: each page truncated to a token budget, optionally summarised toward a goal."""

from __future__ import annotations

import re
from collections.abc import Callable

from egrpo_jax.tokenizer_api import TokenizerLike
from egrpo_jax.tools.base import Hit

# summariser(page_text, goal) -> condensed text (e.g. an LLM call); runs before truncation.
Summarizer = Callable[[str, str], str]

_WORD_END = re.compile(r"\S+")


def truncate(text: str, max_tokens: int, tokenizer: TokenizerLike | None = None) -> str:
    """At most `max_tokens` tokens of `text` (tokenizer tokens, or whitespace words without one)."""
    if tokenizer is not None:
        ids = tokenizer.encode_text(text)  # page text is data: count it as the host encodes it
        if len(ids) <= max_tokens:
            return text
        return tokenizer.decode(ids[:max_tokens]) + " ..."
    end = None
    for n, m in enumerate(_WORD_END.finditer(text), 1):
        if n == max_tokens:
            end = m.end()
        elif n > max_tokens:
            return text[:end] + " ..."
    return text


def format_page(address: str, hit: Hit | None, body: str | None) -> str:
    if hit is None:
        return f"No page found for {address!r}."
    return f"Page: {hit.title} (url: {address})\n{body}"
