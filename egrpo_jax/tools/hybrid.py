"""Hybrid search: reciprocal-rank fusion (RRF) of a BM25 and a dense backend over the same corpus.

RRF (Cormack et al. 2009) scores a document by sum_i 1 / (k + rank_i) over the rankings it appears
in (rank 1 = best). It needs no score calibration between BM25 and cosine similarity, and k = 60
(the paper's value) keeps one list's top hit from drowning agreement between the lists.

Index folder layout:
  meta.json  {"format": 1, "kind": "hybrid", "num_docs", "rrf_k", "depth"}
  bm25/      a BM25 index folder          dense/  a dense index folder (same documents, same order)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from egrpo_jax.data.schema import Document
from egrpo_jax.tools.base import Hit, SearchBackend
from egrpo_jax.tools.bm25 import Bm25Index
from egrpo_jax.tools.dense import DenseIndex
from egrpo_jax.tools.index_folder import read_meta, write_meta


def rrf_fuse(rankings: Sequence[Sequence[str]], k: int = 60) -> list[tuple[str, float]]:
    """(doc id, fused score) best first. Ties go to the better best rank, then to the earlier list."""
    score: dict[str, float] = {}
    key: dict[str, tuple[int, int]] = {}
    for li, ranking in enumerate(rankings):
        for rank, doc in enumerate(ranking, 1):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + rank)
            key[doc] = min(key.get(doc, (rank, li)), (rank, li))
    return sorted(score.items(), key=lambda x: (-x[1], key[x[0]]))


class HybridIndex:
    """SearchBackend fusing `sparse` and `dense` (any two SearchBackends over the same documents)."""

    def __init__(self, sparse: SearchBackend, dense: SearchBackend, *, rrf_k: int = 60, depth: int = 50):
        if rrf_k < 1 or depth < 1:
            raise ValueError(f"hybrid index needs rrf_k >= 1 and depth >= 1, got rrf_k={rrf_k} depth={depth}")
        self.sparse, self.dense, self.rrf_k, self.depth = sparse, dense, rrf_k, depth

    @classmethod
    def build(cls, docs: Sequence[Document], encoder, *, rrf_k: int = 60, depth: int = 50,
              dense_settings=None, progress: bool = False, **bm25_kw: Any) -> HybridIndex:
        docs = list(docs)
        sparse = Bm25Index.build(docs, **bm25_kw)
        return cls(sparse, DenseIndex.build(docs, encoder, dense_settings, progress=progress), rrf_k=rrf_k, depth=depth)

    def save(self, out_dir: str | os.PathLike) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.sparse.save(os.path.join(out_dir, "bm25"))
        self.dense.save(os.path.join(out_dir, "dense"))
        write_meta(out_dir, "hybrid", len(self), rrf_k=self.rrf_k, depth=self.depth)

    @classmethod
    def load(cls, index_dir: str | os.PathLike, encoder: Any = None) -> HybridIndex:
        meta = read_meta(index_dir, "hybrid")
        sparse = Bm25Index.load(os.path.join(index_dir, "bm25"))
        dense = DenseIndex.load(os.path.join(index_dir, "dense"), encoder)
        if [d.id for d in sparse.docs] != [d.id for d in dense.docs] or len(sparse) != meta["num_docs"]:
            raise ValueError(f"{index_dir}: bm25/ and dense/ hold different documents; rebuild with "
                             "`egrpo index --kind hybrid`")
        return cls(sparse, dense, rrf_k=meta["rrf_k"], depth=meta["depth"])

    # ---- SearchBackend -----------------------------------------------------------------------
    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        n = max(topk, self.depth)  # fuse deeper lists than asked: agreement below the top-k counts
        out = []
        for a, b in zip(self.sparse.search(queries, n), self.dense.search(queries, n), strict=True):
            hits = {h.doc_id: h for h in (*b, *a)}  # same documents either way; keep one Hit per id
            fused = rrf_fuse([[h.doc_id for h in a], [h.doc_id for h in b]], self.rrf_k)[:topk]
            out.append([dataclasses.replace(hits[d], score=s) for d, s in fused])
        return out

    def fetch(self, ids: list[str]) -> list[Hit | None]:
        return self.sparse.fetch(ids)

    def __len__(self) -> int:
        return len(self.sparse)
