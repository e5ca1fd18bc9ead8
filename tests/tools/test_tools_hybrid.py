"""Reciprocal-rank fusion by hand, the hybrid backend over stub and real backends, save/load."""

import pytest
from dense_env import minilm, require_dense

from egrpo_jax.tools.base import Hit
from egrpo_jax.tools.dense import DenseIndex
from egrpo_jax.tools.hybrid import HybridIndex, rrf_fuse

require_dense()


def test_rrf_scores_and_order_by_hand():
    fused = rrf_fuse([["a", "b", "c"], ["b", "c", "d"]], k=60)
    assert [d for d, _ in fused] == ["b", "c", "a", "d"]
    assert dict(fused) == pytest.approx({"b": 1 / 62 + 1 / 61, "c": 1 / 63 + 1 / 62, "a": 1 / 61, "d": 1 / 63})
    # equal scores: the better best rank wins, then the earlier list
    assert [d for d, _ in rrf_fuse([["x", "y"], ["y", "x"]])] == ["x", "y"]
    assert [d for d, _ in rrf_fuse([["p"], ["q", "p"]], k=1)] == ["p", "q"]  # 1/2 + 1/3 > 1/2


class Stub:
    def __init__(self, ranking):
        self.ranking = ranking

    def search(self, queries, topk):
        return [[Hit(d, d.upper(), f"text {d}", 1.0 / (i + 1)) for i, d in enumerate(self.ranking[:topk])]
                for _ in queries]

    def fetch(self, ids):
        return [Hit(i, i.upper(), f"text {i}", 0.0) for i in ids]

    def __len__(self):
        return 5


def test_hybrid_fuses_deeper_than_topk():
    # "c" is third in both lists: 2/63 beats any single first place (1/61), but only when the
    # fusion looks past the top 1 each backend would return for topk=1.
    sparse, dense = Stub(["a", "b", "c"]), Stub(["d", "e", "c"])
    (hits,) = HybridIndex(sparse, dense, depth=3).search(["q"], 1)
    assert (hits[0].doc_id, hits[0].title, hits[0].score) == ("c", "C", pytest.approx(2 / 63))
    (shallow,) = HybridIndex(sparse, dense, depth=1).search(["q"], 1)
    assert shallow[0].doc_id == "a"
    both = HybridIndex(sparse, dense, depth=3).search(["q1", "q2"], 6)
    assert [h.doc_id for h in both[1]] == ["c", "a", "d", "b", "e"]
    with pytest.raises(ValueError, match="rrf_k >= 1 and depth >= 1"):
        HybridIndex(sparse, dense, rrf_k=0)


def test_hybrid_over_real_backends_round_trips(small_index, small_docs, tmp_path):
    hybrid = HybridIndex(small_index, DenseIndex.build(small_docs, minilm()), rrf_k=10, depth=5)
    qs = ["German metropolis", "capital of France", "Danube", "", "zzzqqq"]
    got = hybrid.search(qs, 3)
    assert got[0][0].doc_id == "d2" and got[1][0].doc_id == "d1" and got[3] == []
    assert [h.doc_id for h in got[4]] == [h.doc_id for h in hybrid.dense.search(["zzzqqq"], 3)[0]]  # BM25 empty
    hybrid.save(tmp_path / "h")
    loaded = HybridIndex.load(tmp_path / "h", minilm())
    assert (loaded.rrf_k, loaded.depth) == (10, 5) and loaded.search(qs, 3) == got
    assert loaded.fetch(["d5"])[0].title == "Danube"


def test_hybrid_load_rejects_parts_over_different_documents(small_index, small_docs, tmp_path):
    HybridIndex(small_index, DenseIndex.build(small_docs[:4], minilm())).save(tmp_path / "h")
    with pytest.raises(ValueError, match="bm25/ and dense/ hold different documents"):
        HybridIndex.load(tmp_path / "h", minilm())
