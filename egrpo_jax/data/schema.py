"""Entity-annotated QA records and corpus documents (the on-disk JSONL schema)."""

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


@dataclasses.dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    url: str | None = None
