"""In-process BM25 search backend (bm25s), built once, saved to a folder, loaded fast.

Index folder layout (see tools/index_folder.py for what all kinds share):
  meta.json    {"format": 1, "kind": "bm25", "num_docs", "stemmer", "stopwords", "k1", "b"}
  docs.jsonl   the corpus documents in index order ({"id", "title", "text", "url"?})
  bm25/        the bm25s sparse matrix + vocabulary
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import bm25s
import numpy as np
import Stemmer

from egrpo_jax.data.io import load_corpus
from egrpo_jax.data.schema import Document
from egrpo_jax.tools.base import Hit
from egrpo_jax.tools.index_folder import DocStore, read_meta, write_meta


# bm25s sets its own logger to DEBUG: once any handler exists on the root logger (absl, orbax),
# every index build would print "DEBUG:bm25s:Building index from IDs objects".
logging.getLogger("bm25s").setLevel(logging.WARNING)


def _stemmer(language: str | None):
    if not language:
        return None
    return Stemmer.Stemmer(language)


class Bm25Index:
    """SearchBackend over a bm25s index. Thread-safe for concurrent searches."""

    def __init__(self, retriever, docs: list[Document], *, stemmer: str | None, stopwords: str | None):
        self._retriever = retriever
        self.store = DocStore(docs)
        self.docs = self.store.docs
        self.stemmer_name, self.stopwords = stemmer, stopwords
        self._stem = _stemmer(stemmer)
        # The stemmer object keeps internal state; serialise tokenisation across threads.
        self._lock = threading.Lock()

    # ---- building / persistence -------------------------------------------------------------
    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        *,
        stemmer: str | None = "english",
        stopwords: str | None = "en",
        k1: float = 1.5,
        b: float = 0.75,
    ) -> Bm25Index:
        docs = list(docs)
        if not docs:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        texts = [f"{d.title}\n{d.text}" for d in docs]
        tokens = bm25s.tokenize(texts, stopwords=stopwords, stemmer=_stemmer(stemmer), show_progress=False)
        retriever = bm25s.BM25(k1=k1, b=b)
        retriever.index(tokens, show_progress=False)
        return cls(retriever, docs, stemmer=stemmer, stopwords=stopwords)

    @classmethod
    def from_corpus(cls, path: str | os.PathLike, **kw) -> Bm25Index:
        return cls.build(load_corpus(path), **kw)

    def save(self, out_dir: str | os.PathLike) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self._retriever.save(os.path.join(out_dir, "bm25"), show_progress=False)
        self.store.save(out_dir)
        write_meta(out_dir, "bm25", len(self.docs), stemmer=self.stemmer_name, stopwords=self.stopwords,
                   k1=float(self._retriever.k1), b=float(self._retriever.b))

    @classmethod
    def load(cls, index_dir: str | os.PathLike) -> Bm25Index:
        meta = read_meta(index_dir, "bm25")
        retriever = bm25s.BM25.load(os.path.join(index_dir, "bm25"), show_progress=False)
        docs = DocStore.load(index_dir, meta).docs
        return cls(retriever, docs, stemmer=meta["stemmer"], stopwords=meta["stopwords"])

    # ---- SearchBackend -----------------------------------------------------------------------
    def _query_tokens(self, queries: list[str]) -> list[list[str]]:
        with self._lock:
            return bm25s.tokenize(
                queries, stopwords=self.stopwords, stemmer=self._stem, return_ids=False, show_progress=False
            )

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        out = []
        for toks in self._query_tokens(list(queries)):
            ids = self._retriever.get_tokens_ids(toks)  # drops out-of-vocabulary tokens
            if not ids:  # only stopwords / unknown words: nothing matches
                out.append([])
                continue
            scores = np.asarray(self._retriever.get_scores(ids), dtype=np.float32)
            k = min(topk, scores.shape[0])
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.lexsort((top, -scores[top]))]  # best first; ties by index for determinism
            out.append([self.store.hit(int(i), float(scores[i])) for i in top if scores[i] > 0])
        return out

    def fetch(self, ids: list[str]) -> list[Hit | None]:
        return self.store.fetch(ids)

    def __len__(self) -> int:
        return len(self.docs)
