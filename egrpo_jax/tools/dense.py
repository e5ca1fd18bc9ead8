"""Dense search backend: a sentence encoder (models/sentence_encoder.py) + a faiss index of unit vectors.

Inner product of L2-normalised embeddings is cosine similarity. `index="flat"` searches exactly
(faiss IndexFlatIP, the default); `index="hnsw"` builds an HNSW graph (IndexHNSWFlat) that answers
large corpora in sub-linear time at a small recall cost (`ef_search` trades speed for recall).

Index folder layout (see tools/index_folder.py for what all kinds share):
  meta.json      {"format": 1, "kind": "dense", "num_docs", "dim", "index", "hnsw_m", "ef_search",
                  "query_prefix", "doc_prefix",
                  "encoder": {"path", "fingerprint", "max_length", "pooling", "dtype"}}
  docs.jsonl     the documents in index order
  vectors.faiss  the faiss index (row i = document i)

Queries must be embedded by the encoder that embedded the documents: loading checks the encoder's
fingerprint (sha256 of its config, tokenizer and weights) against meta.json.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from egrpo_jax.data.schema import Document
from egrpo_jax.models.sentence_encoder import SentenceEncoder
from egrpo_jax.tools.base import Hit
from egrpo_jax.tools.index_folder import DocStore, meta_path, read_meta, write_meta

INDEX_TYPES = ("flat", "hnsw")
DENSE_HINT = "pip install 'egrpo-jax[dense]'"


def _faiss():
    # faiss is the optional [dense] extra: imported on first use, so a missing one is a clear line
    try:
        import faiss
    except ImportError:
        raise ImportError(f"the dense search backend needs faiss: run `{DENSE_HINT}` (or `pip install faiss-cpu`)") \
            from None
    return faiss


@dataclasses.dataclass(frozen=True)
class DenseSettings:
    index: str = "flat"
    hnsw_m: int = 32  # graph degree (hnsw only)
    ef_construction: int = 200  # build-time beam (hnsw only)
    ef_search: int = 128  # query-time beam (hnsw only); >= topk
    query_prefix: str = ""  # e5-style models want "query: " ...
    doc_prefix: str = ""  # ... and "passage: "

    def __post_init__(self) -> None:
        if self.index not in INDEX_TYPES:
            raise ValueError(f"dense index type {self.index!r}: must be one of {list(INDEX_TYPES)}")
        for k in ("hnsw_m", "ef_construction", "ef_search"):
            if getattr(self, k) < 1:
                raise ValueError(f"dense index {k} must be >= 1, got {getattr(self, k)}")


def _doc_text(d: Document, prefix: str) -> str:
    return f"{prefix}{d.title}\n{d.text}"  # the title, as BM25 indexes it too


class DenseIndex:
    """SearchBackend over faiss. Thread-safe for concurrent searches (faiss reads, jitted encoder)."""

    def __init__(self, encoder, index, docs: Sequence[Document], settings: DenseSettings):
        if index.ntotal != len(docs):
            raise ValueError(f"dense index holds {index.ntotal} vectors for {len(docs)} documents")
        self.encoder, self._index, self.settings = encoder, index, settings
        self.store = DocStore(docs)
        self.docs = self.store.docs
        if settings.index == "hnsw":
            index.hnsw.efSearch = settings.ef_search

    # ---- building / persistence -------------------------------------------------------------
    @classmethod
    def build(cls, docs: Sequence[Document], encoder, settings: DenseSettings | None = None, *,
              progress: bool = False) -> DenseIndex:
        """Embed `docs` with `encoder` (a SentenceEncoder) and index the vectors."""
        faiss = _faiss()
        settings = settings or DenseSettings()
        docs = list(docs)
        if not docs:
            raise ValueError("cannot build a dense index over an empty corpus")
        vectors = encoder.encode([_doc_text(d, settings.doc_prefix) for d in docs], progress=progress)
        if settings.index == "hnsw":
            index = faiss.IndexHNSWFlat(encoder.dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = settings.ef_construction
        else:
            index = faiss.IndexFlatIP(encoder.dim)
        index.add(vectors)
        return cls(encoder, index, docs, settings)

    def save(self, out_dir: str | os.PathLike) -> None:
        os.makedirs(out_dir, exist_ok=True)
        _faiss().write_index(self._index, os.path.join(out_dir, "vectors.faiss"))
        self.store.save(out_dir)
        s, e = self.settings, self.encoder
        write_meta(out_dir, "dense", len(self.docs), dim=e.dim, index=s.index, hnsw_m=s.hnsw_m,
                   ef_construction=s.ef_construction, ef_search=s.ef_search, query_prefix=s.query_prefix,
                   doc_prefix=s.doc_prefix, encoder=encoder_meta(e))

    @classmethod
    def load(cls, index_dir: str | os.PathLike, encoder: Any = None) -> DenseIndex:
        """Load a folder; `encoder` is None (the folder named in meta.json), a folder, or a SentenceEncoder."""
        meta = read_meta(index_dir, "dense")
        encoder = matching_encoder(meta_path(index_dir), meta, encoder)
        settings = DenseSettings(index=meta["index"], hnsw_m=meta["hnsw_m"], ef_construction=meta["ef_construction"],
                                 ef_search=meta["ef_search"], query_prefix=meta["query_prefix"],
                                 doc_prefix=meta["doc_prefix"])
        index = _faiss().read_index(os.path.join(index_dir, "vectors.faiss"))
        if index.d != encoder.dim:
            raise ValueError(f"{index_dir}/vectors.faiss: vectors of dim {index.d}, encoder gives {encoder.dim}")
        return cls(encoder, index, DocStore.load(index_dir, meta).docs, settings)

    # ---- SearchBackend -----------------------------------------------------------------------
    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        queries = list(queries)
        # A blank query means nothing (as for BM25); embedding it would return arbitrary documents.
        live = [i for i, q in enumerate(queries) if q.strip()]
        out: list[list[Hit]] = [[] for _ in queries]
        if not live:
            return out
        vecs = self.encoder.encode([self.settings.query_prefix + queries[i] for i in live])
        scores, ids = self._index.search(vecs, min(topk, len(self.docs)))
        for row, i in enumerate(live):
            out[i] = [self.store.hit(int(j), float(s)) for j, s in zip(ids[row], scores[row]) if j >= 0]
        return out

    def fetch(self, ids: list[str]) -> list[Hit | None]:
        return self.store.fetch(ids)

    def __len__(self) -> int:
        return len(self.docs)


def encoder_meta(encoder) -> dict[str, Any]:
    c = encoder.config
    return {"path": encoder.path, "fingerprint": encoder.fingerprint, "max_length": encoder.max_length,
            "pooling": c.pooling, "dtype": c.dtype}


def matching_encoder(source: str, meta: dict[str, Any], encoder: Any = None):
    """The encoder an index was built with: loaded from meta.json's folder (or `encoder`, a folder or
    a SentenceEncoder), and checked to be the same model with the same settings."""
    want = meta["encoder"]
    if encoder is None or isinstance(encoder, (str, os.PathLike)):
        path = str(encoder or want["path"])
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{source}: encoder folder {path} not found; pass the folder of the encoder "
                                    "the index was built with (--encoder)")
        encoder = SentenceEncoder(path, max_length=want["max_length"], dtype=want["dtype"])
    got = encoder_meta(encoder)
    if got["fingerprint"] != want["fingerprint"]:
        raise ValueError(f"{source}: built with encoder {want['path']} (sha256 {want['fingerprint'][:12]}), "
                         f"not {got['path']} (sha256 {got['fingerprint'][:12]}); pass that encoder or rebuild")
    for key in ("max_length", "pooling", "dtype"):
        if got[key] != want[key]:
            raise ValueError(f"{source}: built with encoder {key} {want[key]!r}, this encoder has {got[key]!r}")
    return encoder
