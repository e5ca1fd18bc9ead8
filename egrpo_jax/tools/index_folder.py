"""What every index folder shares: meta.json naming its kind, and docs.jsonl with its documents.

  meta.json   {"format": 1, "kind": "bm25" | "dense" | "hybrid", "num_docs": N, ...kind-specific keys}
  docs.jsonl  the corpus documents in index order ({"id", "title", "text", "url"?})

BM25 folders written before the "kind" key existed have none; they are read as "bm25".
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from egrpo_jax.data.io import load_corpus, write_corpus
from egrpo_jax.data.schema import Document
from egrpo_jax.tools.base import Hit

FORMAT = 1
KINDS = ("bm25", "dense", "hybrid")


def meta_path(index_dir: str | os.PathLike) -> str:
    return os.path.join(index_dir, "meta.json")


def read_meta(index_dir: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """meta.json of an index folder; with `kind`, the folder must hold that kind of index."""
    path = meta_path(index_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found; build the index with `egrpo index --corpus ... --out DIR`")
    try:
        with open(path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: index format {meta.get('format') if isinstance(meta, dict) else meta!r} "
                         f"is not supported (want {FORMAT})")
    found = meta.setdefault("kind", "bm25")
    if found not in KINDS:
        raise ValueError(f"{path}: kind {found!r} is not one of {list(KINDS)}")
    if kind is not None and found != kind:
        raise ValueError(f"{path}: holds a {found!r} index, not {kind!r}; build one with "
                         f"`egrpo index --kind {kind}`")
    return meta


def folder_kind(index_dir: str | os.PathLike) -> str:
    return read_meta(index_dir)["kind"]


def write_meta(out_dir: str | os.PathLike, kind: str, num_docs: int, **fields: Any) -> None:
    with open(meta_path(out_dir), "w") as f:
        json.dump({"format": FORMAT, "kind": kind, "num_docs": num_docs, **fields}, f, indent=1)


class DocStore:
    """The documents of an index: hits by position, fetch by id or url."""

    def __init__(self, docs: Sequence[Document]):
        self.docs = list(docs)
        self._by_key: dict[str, int] = {}
        for i, d in enumerate(self.docs):
            self._by_key.setdefault(d.id, i)
            if d.url:
                self._by_key.setdefault(d.url, i)

    def hit(self, i: int, score: float) -> Hit:
        d = self.docs[i]
        return Hit(doc_id=d.id, title=d.title, text=d.text, score=score, url=d.url)

    def fetch(self, keys: list[str]) -> list[Hit | None]:
        out: list[Hit | None] = []
        for key in keys:
            i = self._by_key.get(key)
            out.append(None if i is None else self.hit(i, 0.0))
        return out

    def save(self, out_dir: str | os.PathLike) -> None:
        write_corpus(os.path.join(out_dir, "docs.jsonl"), self.docs)

    @classmethod
    def load(cls, index_dir: str | os.PathLike, meta: dict[str, Any]) -> DocStore:
        docs = load_corpus(os.path.join(index_dir, "docs.jsonl"))
        if len(docs) != meta["num_docs"]:
            raise ValueError(f"{index_dir}: docs.jsonl has {len(docs)} documents, meta.json says {meta['num_docs']}")
        return cls(docs)

    def __len__(self) -> int:
        return len(self.docs)
