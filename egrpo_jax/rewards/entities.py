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
`grounded_entities` credits an entity only where the rollout had read it before naming it (in the
question or an earlier tool response), matched by the same rule.
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


def variants(entity: EntitySpec) -> list[str]:
    """The surface forms of an entity: a string, a sequence of variants or a data.schema.Entity."""
    if isinstance(entity, str):
        return [entity]
    forms = getattr(entity, "variants", None)  # data.schema.Entity
    return list(forms) if forms is not None else list(entity)


def _blocks(texts: Sequence[str], strict: bool) -> list[str]:
    return list(texts) if strict else [normalize_text(t) for t in texts]


def _occurs(entity: EntitySpec, blocks: Sequence[str], strict: bool) -> bool:
    """Some variant of `entity` is in some block (blocks prepared by _blocks with the same `strict`)."""
    for v in variants(entity):
        if strict:
            if v and any(v in b for b in blocks):
                return True
            continue
        pat = _variant_pattern(v)
        if pat is not None and any(pat.search(b) for b in blocks):
            return True
    return False


def matched_entities(
    thoughts: Sequence[str], entities: Sequence[EntitySpec], strict: bool = False
) -> set[int]:
    """Indices of `entities` that occur in at least one of `thoughts`."""
    blocks = _blocks(thoughts, strict)
    return {i for i, ent in enumerate(entities) if _occurs(ent, blocks, strict)}


def grounded_entities(
    thoughts: Sequence[str], responses_before: Sequence[int], question: str, responses: Sequence[str],
    entities: Sequence[EntitySpec], strict: bool = False,
) -> set[int]:
    """Indices of `entities` named in a thought that the rollout had already read: in the question or in
    one of the first `responses_before[k]` tool responses when it wrote thought k (rl.entity_credit =
    "grounded"). Either side may use any variant of the entity."""
    if len(responses_before) != len(thoughts):
        raise ValueError(f"grounded_entities: {len(thoughts)} thoughts but {len(responses_before)} "
                         "responses_before counts")
    seen = _blocks([question, *responses], strict)
    found: set[int] = set()
    for thought, n in zip(thoughts, responses_before):
        if not 0 <= n <= len(responses):
            raise ValueError(f"grounded_entities: responses_before {n} outside [0, {len(responses)}]")
        named = matched_entities([thought], entities, strict) - found
        found |= {i for i in named if _occurs(entities[i], seen[:1 + n], strict)}
    return found


def entity_mentions(thoughts: Sequence[str], entities: Sequence[EntitySpec], strict: bool = False) -> int:
    """Entities named per thought, summed over the thoughts (one entity in two thoughts counts twice)."""
    return sum(len(matched_entities([t], entities, strict)) for t in thoughts)


def match_rate(thoughts: Sequence[str], entities: Sequence[EntitySpec], strict: bool = False) -> float:
    """gamma = |matched| / m; 0.0 for a question without entities."""
    if not entities:
        return 0.0
    return len(matched_entities(thoughts, entities, strict=strict)) / len(entities)
