"""Entity-annotated QA records and corpus documents (the on-disk JSONL schema).

Question file (one JSON object per line)::

    {"id": "q1", "question": "...", "answer": "...", "answer_aliases": ["..."],
     "entities": [{"name": "...", "aliases": ["..."]}, ...], "metadata": {...}}

``metadata`` is optional (any JSON object). ``entities`` are the question's ground-truth entities
and must be non-empty. Corpus file: ``{"id", "title", "text", "url"?}`` per line.

Loading and validation live in egrpo_jax/data/io.py; these classes only convert to/from dicts.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Entity:
    name: str
    aliases: tuple[str, ...] = ()

    @property
    def variants(self) -> list[str]:
        """All surface forms that count as a match (name first)."""
        return [self.name, *[a for a in self.aliases if a != self.name]]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "aliases": list(self.aliases)}


@dataclasses.dataclass(frozen=True)
class QARecord:
    id: str
    question: str
    answer: str
    answer_aliases: tuple[str, ...]
    entities: tuple[Entity, ...]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def answers(self) -> list[str]:
        return [self.answer, *self.answer_aliases]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "answer_aliases": list(self.answer_aliases),
            "entities": [e.to_dict() for e in self.entities],
        }
        if self.metadata:
            d["metadata"] = self.metadata
        return d


@dataclasses.dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "title": self.title, "text": self.text}
        if self.url is not None:
            d["url"] = self.url
        return d
