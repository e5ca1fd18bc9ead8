"""`egrpo eval-retrieval --data DIR`: recall@1/3/10 of each hop's gold documents for bm25, dense and
hybrid, with the time to build each index and to answer a query. See egrpo_jax/eval/retrieval.py
for the query sets and the metric.

  egrpo eval-retrieval --data data_out/syn [--split all|train|dev|test] [--kinds bm25,dense,hybrid]
  egrpo eval-retrieval --questions q.jsonl --corpus corpus.jsonl --out runs/retrieval.md

Indexes are built in memory (hybrid fuses the bm25 and dense ones just built, so its build time is
their sum). Queries go in batches of --query-batch, as the tool calls of one rollout step do; each
set is run once untimed first so the dense encoder's jit compiles are not counted as query time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from egrpo_jax.commands.index import KINDS, add_bm25_arguments, add_encoder_arguments

SPLITS = ("train", "dev", "test")
KS = (1, 3, 10)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="a folder written by `egrpo gen-data` (corpus.jsonl + splits)")
    p.add_argument("--split", choices=(*SPLITS, "all"), default="all",
                   help="with --data: which questions (default all: no retriever here is trained on them)")
    p.add_argument("--questions", action="append", default=[], help="question JSONL (repeatable; instead of --data)")
    p.add_argument("--corpus", default=None, help="corpus JSONL (instead of --data)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    p.add_argument("--max-questions", type=int, default=None, help="only the first N questions")
    p.add_argument("--query-batch", type=int, default=64, help="queries per search call (default 64)")
    p.add_argument("--out", default=None, help="also write the markdown table to this file")
    add_bm25_arguments(p)
    add_encoder_arguments(p)


def _inputs(args) -> tuple[list[str], str]:
    if args.data:
        if args.questions or args.corpus:
            raise ValueError("give --data, or --questions and --corpus, not both")
        splits = SPLITS if args.split == "all" else (args.split,)
        return [os.path.join(args.data, f"{s}.jsonl") for s in splits], os.path.join(args.data, "corpus.jsonl")
    if not args.questions or not args.corpus:
        raise ValueError("give --data DIR, or --questions FILE and --corpus FILE")
    return list(args.questions), args.corpus


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"--kinds {text!r}: must be a comma-separated subset of {','.join(KINDS)}")
    return kinds


def _ranked(backend, queries: list[str], batch: int) -> tuple[list[list[str]], float]:
    """Doc-id rankings (top max(KS)) and the seconds they took."""
    t0 = time.perf_counter()
    out: list[list[str]] = []
    for i in range(0, len(queries), batch):
        out.extend([h.doc_id for h in hits] for hits in backend.search(queries[i : i + batch], max(KS)))
    return out, time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    from egrpo_jax.commands.index import build
    from egrpo_jax.data.io import load_corpus, load_questions
    from egrpo_jax.eval.retrieval import QUERY_SETS, Row, cases, markdown_table, recall_at
    from egrpo_jax.tools.hybrid import HybridIndex

    try:
        kinds = _kinds(args.kinds)
        if args.query_batch < 1 or (args.max_questions is not None and args.max_questions < 1):
            raise ValueError("--query-batch and --max-questions must be >= 1")
        q_paths, corpus_path = _inputs(args)
        questions = [q for p in q_paths for q in load_questions(p)][: args.max_questions]
        docs = load_corpus(corpus_path)
        query_sets = {s: cases(questions, s) for s in QUERY_SETS}
        built: dict[str, tuple[object, float]] = {}
        for kind in ("bm25", "dense"):  # hybrid fuses these two: built once, its build time is their sum
            if kind in kinds or "hybrid" in kinds:
                t0 = time.perf_counter()
                built[kind] = (build(kind, docs, args), time.perf_counter() - t0)  # dense: + encoder load
                print(f"built {kind} over {len(docs)} documents in {built[kind][1]:.1f}s", flush=True)
        if "hybrid" in kinds:
            built["hybrid"] = (HybridIndex(built["bm25"][0], built["dense"][0], rrf_k=args.rrf_k),
                               built["bm25"][1] + built["dense"][1])
    except (OSError, ValueError, KeyError, ImportError) as e:  # bad files / options / encoder: one line
        print(f"egrpo eval-retrieval: {e}", file=sys.stderr)
        return 2
    rows = []
    for kind in kinds:
        index, build_s = built[kind]
        for name, cs in query_sets.items():
            queries = [c.query for c in cs]
            _ranked(index, queries, args.query_batch)  # warm-up: compiles, caches
            ranked, seconds = _ranked(index, queries, args.query_batch)
            rows.append(Row(kind, name, len(cs), recall_at(ranked, cs, KS), build_s, 1000 * seconds / len(cs)))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = markdown_table(rows, KS)
    header = (f"{len(questions)} questions from {', '.join(q_paths)}; {len(docs)} documents from {corpus_path}; "
              f"load average {load} on {os.cpu_count()} CPUs")
    print(header + "\n\n" + table)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(header + "\n\n" + table + "\n")
        print(f"wrote {args.out}")
    return 0
