"""`egrpo index --corpus corpus.jsonl --out DIR`: build and save a BM25 index folder."""

from __future__ import annotations

import argparse
import sys
import time


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="JSONL corpus: one {id, title, text, url?} object per line")
    p.add_argument("--out", required=True, help="index folder to write (created if missing)")
    p.add_argument("--stemmer", default="english",
                   help="PyStemmer language for stemming, or 'none' (default: english)")
    p.add_argument("--stopwords", default="en", help="bm25s stopword list, or 'none' (default: en)")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed corpus lines instead of failing")


def run(args: argparse.Namespace) -> int:
    from egrpo_jax.data.io import load_corpus
    from egrpo_jax.errors import one_line
    from egrpo_jax.tools.bm25 import Bm25Index

    t0 = time.perf_counter()
    stem = None if args.stemmer.lower() == "none" else args.stemmer
    stop = None if args.stopwords.lower() == "none" else args.stopwords
    try:
        docs = load_corpus(args.corpus, skip_bad=args.skip_bad)
        index = Bm25Index.build(docs, stemmer=stem, stopwords=stop)
    except KeyError as e:  # an unknown stemmer language: one line
        print(f"egrpo index: {one_line(e)}", file=sys.stderr)
        return 2
    index.save(args.out)
    print(f"indexed {len(docs)} documents from {args.corpus} into {args.out} in {time.perf_counter() - t0:.2f}s")
    return 0
