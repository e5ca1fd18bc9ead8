"""Retrieval metrics: recall@k of each hop's gold documents (pure; no index, no timing).

The synthetic and real worlds store, per question, `metadata.hop_queries` (hop k as a
sub-question) and `metadata.gold_docs` (per hop, the ids of the documents that state it). Two
query sets come from them:
- "hop": one query per hop (its sub-question, as an agent that resolved the earlier hops would ask);
- "question": the whole question as one query (an agent's first search), against the first hop's
  gold documents: the question names only the start entity, later hops hide behind relation
  phrases, so no retriever can be asked to find their documents from it.
A query's hop counts as recalled at k when any of its gold documents is among the top k (one is
enough to answer it); recall@k is the fraction of queries whose hop is recalled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from egrpo_jax.data.schema import QARecord

QUERY_SETS = ("hop", "question")


@dataclasses.dataclass(frozen=True)
class Case:
    query: str
    gold: frozenset[str]  # the documents that state the hop (any one will do)


def _hops(q: QARecord) -> tuple[list[str], list[list[str]]]:
    queries, gold = q.metadata.get("hop_queries"), q.metadata.get("gold_docs")
    if not isinstance(queries, list) or not isinstance(gold, list) or len(queries) != len(gold) or not gold:
        raise ValueError(f"question {q.id}: metadata needs 'hop_queries' and 'gold_docs' (one per hop); "
                         "regenerate the data with `egrpo gen-data --world synthetic|real`")
    return queries, gold


def cases(questions: Sequence[QARecord], query_set: str) -> list[Case]:
    if query_set not in QUERY_SETS:
        raise ValueError(f"query set {query_set!r}: must be one of {list(QUERY_SETS)}")
    out = []
    for q in questions:
        queries, gold = _hops(q)
        if query_set == "hop":
            out.extend(Case(text, frozenset(g)) for text, g in zip(queries, gold))
        else:
            out.append(Case(q.question, frozenset(gold[0])))
    return out


def recall_at(ranked: Sequence[Sequence[str]], cases_: Sequence[Case], ks: Sequence[int]) -> dict[int, float]:
    """{k: fraction of cases with a gold document in the top k of their ranking}."""
    if len(ranked) != len(cases_) or not cases_:
        raise ValueError(f"{len(ranked)} rankings for {len(cases_)} cases")
    return {k: sum(bool(c.gold & set(r[:k])) for r, c in zip(ranked, cases_)) / len(cases_) for k in ks}


@dataclasses.dataclass(frozen=True)
class Row:
    kind: str
    query_set: str
    n_queries: int
    recall: dict[int, float]
    build_s: float
    query_ms: float


def markdown_table(rows: Sequence[Row], ks: Sequence[int]) -> str:
    head = ["kind", "queries", "n", *[f"R@{k}" for k in ks], "build s", "query ms/q"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.kind, r.query_set, str(r.n_queries), *[f"{r.recall[k]:.3f}" for k in ks],
                 f"{r.build_s:.1f}", f"{r.query_ms:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
