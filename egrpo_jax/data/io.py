"""Read and write question / corpus / demo JSONL files with validation.

Every problem is a one-line `DataError` naming ``file:line``, the field and what is allowed:
a missing or wrong-typed field, an empty entity list, a duplicate id, invalid UTF-8, bad JSON.
With ``skip_bad=True`` bad lines are skipped instead and the count is logged (and returned by the
``read_*`` variants). Blank lines are ignored.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from egrpo_jax.data.schema import Document, Entity, QARecord

log = logging.getLogger(__name__)
T = TypeVar("T")


class DataError(ValueError):
    """Bad input data; the message names file:line and the field."""


def _lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{os.fspath(path) or repr('')}: file not found" +
                                (" (a folder)" if os.path.isdir(path) else ""))
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if raw.strip():
                yield lineno, raw


def _parse_object(where: str, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: invalid UTF-8 at byte {e.start}; files must be UTF-8 JSONL") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno}); one object per line") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _str(
    where: str, obj: dict[str, Any], key: str, *, optional: bool = False, empty_ok: bool = False, label: str = ""
):
    label = label or key
    if key not in obj or (optional and obj[key] is None):
        if optional:
            return None
        raise DataError(f"{where}: missing field '{label}' (a string)")
    v = obj[key]
    if not isinstance(v, str):
        raise DataError(f"{where}: field '{label}' must be a string, got {type(v).__name__}")
    if not empty_ok and not v.strip():
        raise DataError(f"{where}: field '{label}' must be a non-empty string")
    return v


def _str_list(where: str, v: Any, field: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise DataError(f"{where}: field '{field}' must be a list of strings")
    return tuple(v)


def parse_question(where: str, obj: dict[str, Any]) -> QARecord:
    qid = _str(where, obj, "id")
    question = _str(where, obj, "question")
    answer = _str(where, obj, "answer")
    aliases = _str_list(where, obj.get("answer_aliases", []), "answer_aliases")
    if "entities" not in obj:
        raise DataError(f"{where}: missing field 'entities' (a non-empty list of {{name, aliases}})")
    ents = obj["entities"]
    if not isinstance(ents, list):
        raise DataError(f"{where}: field 'entities' must be a list, got {type(ents).__name__}")
    if not ents:
        raise DataError(f"{where}: field 'entities' is empty; each question needs >= 1 ground-truth entity")
    entities = []
    for i, e in enumerate(ents):
        f = f"entities[{i}]"
        if not isinstance(e, dict):
            raise DataError(f"{where}: field '{f}' must be an object {{name, aliases}}")
        name = _str(where, e, "name", label=f"{f}.name")
        entities.append(Entity(name, _str_list(where, e.get("aliases", []), f"{f}.aliases")))
    meta = obj.get("metadata", {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'metadata' must be an object, got {type(meta).__name__}")
    return QARecord(qid, question, answer, aliases, tuple(entities), meta)


def parse_document(where: str, obj: dict[str, Any]) -> Document:
    return Document(
        _str(where, obj, "id"),
        _str(where, obj, "title", empty_ok=True),
        _str(where, obj, "text"),
        _str(where, obj, "url", optional=True),
    )


def _read(
    path: str | os.PathLike, parse: Callable[[str, dict[str, Any]], T], key: Callable[[T], str], skip_bad: bool
) -> tuple[list[T], list[str]]:
    out: list[T] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for lineno, raw in _lines(path):
        where = f"{os.fspath(path)}:{lineno}"
        try:
            rec = parse(where, _parse_object(where, raw))
            k = key(rec)
            if k in seen:
                raise DataError(f"{where}: field 'id' duplicates id {k!r} first seen on line {seen[k]}")
            seen[k] = lineno
        except DataError as e:
            if not skip_bad:
                raise
            errors.append(str(e))
            continue
        out.append(rec)
    if errors:
        log.warning("skipped %d bad line(s) of %s; first: %s", len(errors), os.fspath(path), errors[0])
    return out, errors


def read_questions(path: str | os.PathLike, *, skip_bad: bool = False) -> tuple[list[QARecord], list[str]]:
    """(records, error messages of the skipped lines)."""
    return _read(path, parse_question, lambda r: r.id, skip_bad)


def load_questions(path: str | os.PathLike, *, skip_bad: bool = False) -> list[QARecord]:
    return read_questions(path, skip_bad=skip_bad)[0]


def read_corpus(path: str | os.PathLike, *, skip_bad: bool = False) -> tuple[list[Document], list[str]]:
    return _read(path, parse_document, lambda d: d.id, skip_bad)


def load_corpus(path: str | os.PathLike, *, skip_bad: bool = False) -> list[Document]:
    return read_corpus(path, skip_bad=skip_bad)[0]


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write dicts as UTF-8 JSONL (non-ASCII kept literal); returns the number of lines."""
    n = 0
    d = os.path.dirname(os.fspath(path))
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_questions(path: str | os.PathLike, records: Iterable[QARecord]) -> int:
    return write_jsonl(path, (r.to_dict() for r in records))


def write_corpus(path: str | os.PathLike, docs: Iterable[Document]) -> int:
    return write_jsonl(path, (d.to_dict() for d in docs))


def iter_objects(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """("file:line", JSON object) per non-blank line; UTF-8 / JSON / non-object lines are DataErrors."""
    for n, raw in _lines(path):
        where = f"{os.fspath(path)}:{n}"
        yield where, _parse_object(where, raw)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Plain JSON objects, one per non-blank line, with file:line errors (for demo files)."""
    return [obj for _, obj in iter_objects(path)]
