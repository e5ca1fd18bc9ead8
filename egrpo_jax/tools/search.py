"""The `search` tool's text: top-k hits per query as title, url (or doc id) and a snippet."""

from __future__ import annotations

from egrpo_jax.tools.base import Hit


def snippet(text: str, max_chars: int) -> str:
    """The start of `text`, cut at a word boundary, with "..." when cut."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut + " ..."


def hit_address(hit: Hit) -> str:
    """What the model passes to `visit` for this hit: its url, or its doc id when it has none."""
    return hit.url or hit.doc_id


def format_search(queries: list[str], results: list[list[Hit]], snippet_chars: int, note: str = "") -> str:
    blocks = []
    for q, hits in zip(queries, results, strict=True):
        if not hits:
            blocks.append(f'No results for "{q}".')
            continue
        lines = [f'Results for "{q}":']
        for i, h in enumerate(hits, 1):
            lines.append(f"{i}. {h.title} (url: {hit_address(h)})\n{snippet(h.text, snippet_chars)}")
        blocks.append("\n".join(lines))
    if note:
        blocks.append(note)
    return "\n\n".join(blocks)
