"""Retrieval recall by hand, query sets from question metadata, and `egrpo eval-retrieval` end to end."""

import re

import pytest
from dense_env import require_dense

from egrpo_jax.cli import main
from egrpo_jax.data.schema import Entity, QARecord
from egrpo_jax.eval.retrieval import Case, cases, recall_at

require_dense()


def _q(qid, hop_queries, gold):
    return QARecord(qid, f"question {qid}?", "ans", (), (Entity("e"),),
                    {"hop_queries": hop_queries, "gold_docs": gold})


def test_cases_from_metadata():
    qs = [_q("a", ["h1", "h2"], [["d1"], ["d2", "d3"]]), _q("b", ["h3"], [["d4"]])]
    assert cases(qs, "hop") == [Case("h1", frozenset({"d1"})), Case("h2", frozenset({"d2", "d3"})),
                                Case("h3", frozenset({"d4"}))]
    # the whole question names only the start entity: it is asked to find the first hop's documents
    assert cases(qs, "question") == [Case("question a?", frozenset({"d1"})), Case("question b?", frozenset({"d4"}))]
    with pytest.raises(ValueError, match="question x: metadata needs 'hop_queries' and 'gold_docs'"):
        cases([QARecord("x", "q?", "a", (), (Entity("e"),), {"chain": []})], "hop")
    with pytest.raises(ValueError, match="query set 'all'"):
        cases(qs, "all")


def test_recall_counts_queries_with_any_gold_doc_in_the_top_k():
    cs = [Case("q1", frozenset({"d1"})), Case("q2", frozenset({"d2", "d3"})), Case("q3", frozenset({"d9"}))]
    ranked = [["x", "y", "d1"], ["d3", "d2"], ["x", "y", "z", "d9"]]
    # gold at rank 3, rank 1 (d3; d2 does not count twice), rank 4
    assert recall_at(ranked, cs, [1, 3, 10]) == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3), 10: 1.0}
    with pytest.raises(ValueError, match="2 rankings for 1 cases"):
        recall_at(ranked[:2], cs[:1], [1])


def test_eval_retrieval_command_on_a_small_synthetic_world(tmp_path, capsys):
    data = tmp_path / "syn"
    assert main(["gen-data", "--world", "synthetic", "--out", str(data), "--people", "20", "--orgs", "8",
                 "--cities", "10", "--countries", "3", "--works", "8", "--questions", "30"]) == 0
    capsys.readouterr()
    out = tmp_path / "r.md"
    assert main(["eval-retrieval", "--data", str(data), "--dtype", "float32", "--max-questions", "20",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.read_text().splitlines() if re.match(r"\| (bm25|dense|hybrid) ", line)]
    assert [(r[0], r[1]) for r in rows] == [(f"| {k}", s) for k in ("bm25", "dense", "hybrid") for s in ("hop", "question")]
    for r in rows:
        r1, r3, r10 = map(float, r[3:6])
        assert 0.0 <= r1 <= r3 <= r10 <= 1.0
        assert r[1] == "hop" or r[2] == "20"  # one query per hop, or per question
    # synthetic names are unique, so a hop's sub-question finds its gold document by name
    assert all(float(r[5]) >= 0.9 for r in rows if r[1] == "hop")
    assert "20 questions from" in text and "load average" in text


def test_eval_retrieval_bad_input_is_one_line(tmp_path, capsys):
    assert main(["eval-retrieval", "--data", str(tmp_path), "--kinds", "bm25,sparse"]) == 2
    err = capsys.readouterr().err
    assert "--kinds 'bm25,sparse': must be a comma-separated subset of bm25,dense,hybrid" in err
    assert main(["eval-retrieval", "--corpus", str(tmp_path / "c.jsonl")]) == 2
    assert "give --data DIR, or --questions FILE and --corpus FILE" in capsys.readouterr().err
    assert main(["eval-retrieval", "--data", str(tmp_path), "--kinds", "bm25"]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl" in err and err.count("\n") == 1
