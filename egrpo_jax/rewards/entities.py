"""Ground-truth entity matching inside the model's <think> blocks (PAPER.md, "Reward").

Default matching (the paper is silent; our documented choice):
- text and variants are Unicode NFKC-normalised, case-folded (`str.casefold`) and their
  whitespace runs collapsed to one space;
- a variant must occur as a whole-word phrase: an edge of the variant that is a word character
  may not touch another word character, so "Rome" does not match "Romeo" or "Jerome" (edges
  that are punctuation, as in "C++", need no boundary);
- each <think> block is searched on its own (an entity split across two blocks is not a match);
- an entity given as a list of surface variants matches if any variant does; empty variants
  never match.
`strict=True` is the paper's literal rule: plain, case-sensitive exact substring.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

EntitySpec = str | Sequence[str]


def normalize_text(text: str) -> str:
    """NFKC, case fold, collapse whitespace (used on both the thoughts and the variants)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@functools.lru_cache(maxsize=65536)
def _variant_pattern(variant: str) -> re.Pattern[str] | None:
    v = normalize_text(variant)
    if not v:
        return None
    left = r"(?<!\w)" if re.match(r"\w", v[0]) else ""
    right = r"(?!\w)" if re.match(r"\w", v[-1]) else ""
    return re.compile(left + re.escape(v) + right)


def _variants(entity: EntitySpec) -> list[str]:
    if isinstance(entity, str):
        return [entity]
    variants = getattr(entity, "variants", None)  # data.schema.Entity
    return list(variants) if variants is not None else list(entity)


def matched_entities(
    thoughts: Sequence[str], entities: Sequence[EntitySpec], strict: bool = False
) -> set[int]:
    """Indices of `entities` that occur in at least one of `thoughts`."""
    if strict:
        blocks = list(thoughts)
        found = set()
        for i, ent in enumerate(entities):
            if any(v and any(v in b for b in blocks) for v in _variants(ent)):
                found.add(i)
        return found
    blocks = [normalize_text(t) for t in thoughts]
    found = set()
    for i, ent in enumerate(entities):
        for v in _variants(ent):
            pat = _variant_pattern(v)
            if pat is not None and any(pat.search(b) for b in blocks):
                found.add(i)
                break
    return found


def match_rate(thoughts: Sequence[str], entities: Sequence[EntitySpec], strict: bool = False) -> float:
    """gamma = |matched| / m; 0.0 for a question without entities."""
    if not entities:
        return 0.0
    return len(matched_entities(thoughts, entities, strict=strict)) / len(entities)
