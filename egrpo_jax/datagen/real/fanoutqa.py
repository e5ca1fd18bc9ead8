"""FanOutQA dev set (310 real multi-hop questions) as entity-annotated QA records.

Read straight from the `fanoutqa` package's ``fanoutqa/data/fanout-final-dev.json``. Ground-truth
entities are the Wikipedia pages the sub-questions were answered from (title, plus the title
without its "(disambiguation)" suffix) and the answers of *bridge* sub-questions (those another
sub-question depends on, e.g. "Who were the first 5 picks?"); leaf answers such as "Left" are
values, not entities. The page texts are not shipped, so this set is for evaluation and entity
analysis with your own search backend.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from egrpo_jax.datagen.real.packages import data_file
from egrpo_jax.data.schema import Entity, QARecord

_PAREN = re.compile(r"\s*\([^)]*\)\s*$")


def answer_text(answer: Any) -> str:
    """FanOutQA answers are strings, numbers, lists or dicts; render one string."""
    if isinstance(answer, dict):
        return "; ".join(f"{k}: {answer_text(v)}" for k, v in answer.items())
    if isinstance(answer, list):
        return ", ".join(answer_text(v) for v in answer)
    if isinstance(answer, bool):
        return "yes" if answer else "no"
    return str(answer)


def _walk(subs: list[dict[str, Any]]):
    for s in subs:
        yield s
        yield from _walk(s.get("decomposition") or [])


def _entities(item: dict[str, Any]) -> list[Entity]:
    subs = list(_walk(item.get("decomposition") or []))
    bridges = {d for s in subs for d in s.get("depends_on") or []}
    names: dict[str, list[str]] = {}  # entity name -> aliases, in first-seen order
    title_of: dict[str, str] = {}  # sub-question id -> its evidence entity name

    def find(variant: str) -> str | None:
        v = variant.lower()
        return next((n for n, al in names.items() if v == n.lower() or v in (a.lower() for a in al)), None)

    for s in subs:
        title = (s.get("evidence") or {}).get("title")
        if isinstance(title, str) and title.strip():
            short = _PAREN.sub("", title).strip()
            name = find(short) or find(title) or short
            names.setdefault(name, [])
            if title != name and title not in names[name]:
                names[name].append(title)
            title_of[s.get("id")] = name
    for s in subs:
        if s.get("id") not in bridges:
            continue
        ans = s.get("answer")
        for a in ans if isinstance(ans, list) else [ans]:
            if not isinstance(a, str) or not a.strip() or re.fullmatch(r"[\d.,%$\s-]+", a) or find(a):
                continue
            # A bridge answer is usually the subject of a later sub-question: an alias of that page.
            page = next((title_of[t["id"]] for t in subs if t.get("id") in title_of and a in t.get("question", "")
                         and s.get("id") in (t.get("depends_on") or [])), None)
            if page is not None:
                names[page].append(a)
            else:
                names[a.strip()] = []
    return [Entity(n, tuple(al)) for n, al in names.items()]


def load_fanoutqa(path: str | os.PathLike | None = None) -> list[QARecord]:
    path = path or data_file("fanoutqa", "fanoutqa", "data", "fanout-final-dev.json")
    with open(path, encoding="utf-8") as f:
        items = json.load(f)
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of questions, got {type(items).__name__}")  # noqa: TRY004 - bad data, not a bad argument
    out = []
    for i, item in enumerate(items):
        for key in ("id", "question", "answer"):
            if key not in item:
                raise ValueError(f"{path}: question #{i}: missing field '{key}'")
        ents = _entities(item)
        if not ents:
            raise ValueError(f"{path}: question #{i} ({item['id']}): no evidence pages or bridge answers")
        subs = list(_walk(item.get("decomposition") or []))
        ans = item["answer"]
        aliases = tuple(answer_text(v) for v in ans.values()) if isinstance(ans, dict) and len(ans) == 1 else ()
        out.append(
            QARecord(
                id=f"fanoutqa-{item['id']}",
                question=item["question"],
                answer=answer_text(ans),
                answer_aliases=aliases,
                entities=tuple(ents),
                metadata={
                    "world": "fanoutqa",
                    "hops": len(subs),
                    "categories": item.get("categories", []),
                    "answer_json": ans,
                    "evidence_urls": sorted({(s.get("evidence") or {}).get("url", "") for s in subs} - {""}),
                },
            )
        )
    return out
