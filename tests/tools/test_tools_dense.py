"""Dense backend (MiniLM + faiss): paraphrase recall vs BM25, save/load, HNSW, encoder checks, the
registry opening every kind, `egrpo index --kind`, and a dense index served over HTTP."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from dense_env import minilm, require_dense
from procs import free_port

from egrpo_jax.cli import main
from egrpo_jax.tools.bm25 import Bm25Index
from egrpo_jax.tools.dense import DenseIndex, DenseSettings
from egrpo_jax.tools.http_client import HttpSearchBackend
from egrpo_jax.tools.hybrid import HybridIndex
from egrpo_jax.tools.registry import open_backend
from egrpo_jax.tools.server import make_server, serve_in_thread

require_dense()

# (query, the document that answers it): no query shares a content word with its document's
# title, and BM25 ranks a different document first (or nothing).
PARAPHRASES = [("German metropolis", "d2"), ("a waterway in the north of France", "d4"),
               ("ancient city of the Romans", "d3"), ("where is the Eiffel tower", "d1")]


@pytest.fixture(scope="module")
def dense(small_docs):
    return DenseIndex.build(small_docs, minilm())


def test_dense_finds_paraphrases_bm25_misses(dense, small_index):
    queries = [q for q, _ in PARAPHRASES]
    want = [d for _, d in PARAPHRASES]
    assert [hits[0].doc_id for hits in dense.search(queries, 3)] == want
    bm25_top = [hits[0].doc_id if hits else None for hits in small_index.search(queries, 3)]
    assert all(b != w for b, w in zip(bm25_top, want))  # every one is a case where dense wins


def test_dense_scores_are_cosines_best_first_and_topk_is_capped(dense):
    (hits,) = dense.search(["capital of Germany"], 50)
    assert len(hits) == 5 and hits[0].doc_id == "d2" and hits[0].url == "https://wiki.example/Berlin"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert dense.search(["", "   ", "Rome"], 2)[:2] == [[], []]  # blank queries mean nothing
    with pytest.raises(ValueError, match="topk must be >= 1"):
        dense.search(["x"], 0)


def test_fetch_by_id_and_url(dense):
    a, b, c = dense.fetch(["d3", "https://wiki.example/Berlin", "nope"])
    assert (a.title, b.doc_id, c) == ("Rome", "d2", None)


QUERIES = ["capital city", "Seine river Paris", "Vienna", "German metropolis"]


def test_save_load_round_trip_gives_identical_results(dense, tmp_path, small_docs):
    dense.save(tmp_path / "dx")
    meta = json.loads((tmp_path / "dx" / "meta.json").read_text())
    assert (meta["kind"], meta["dim"], meta["index"], meta["encoder"]["max_length"]) == ("dense", 384, "flat", 256)
    loaded = DenseIndex.load(tmp_path / "dx", minilm())
    assert loaded.search(QUERIES, 3) == dense.search(QUERIES, 3) and loaded.docs == small_docs
    # without an encoder argument it loads the folder meta.json names
    assert DenseIndex.load(tmp_path / "dx").search(QUERIES[:1], 2) == dense.search(QUERIES[:1], 2)


def test_hnsw_option_builds_saves_and_agrees_with_flat(dense, small_docs, tmp_path):
    hnsw = DenseIndex.build(small_docs, minilm(), DenseSettings(index="hnsw", hnsw_m=8, ef_search=16))
    ids = [[h.doc_id for h in hits] for hits in hnsw.search(QUERIES, 3)]
    assert ids == [[h.doc_id for h in hits] for hits in dense.search(QUERIES, 3)]
    hnsw.save(tmp_path / "hx")
    loaded = DenseIndex.load(tmp_path / "hx", minilm())
    assert type(loaded._index).__name__ == "IndexHNSWFlat" and loaded._index.hnsw.efSearch == 16
    assert loaded.search(QUERIES, 3) == hnsw.search(QUERIES, 3)
    with pytest.raises(ValueError, match=r"dense index type 'ivf': must be one of \['flat', 'hnsw'\]"):
        DenseSettings(index="ivf")


def _edit_meta(folder, **encoder):
    path = os.path.join(folder, "meta.json")
    meta = json.load(open(path))
    meta["encoder"].update(encoder)
    json.dump(meta, open(path, "w"))


def test_mismatched_or_missing_encoder_is_a_one_line_error(dense, tmp_path):
    dense.save(tmp_path / "dx")
    _edit_meta(tmp_path / "dx", fingerprint="0" * 64)
    with pytest.raises(ValueError, match=r"meta.json: built with encoder .* \(sha256 000000000000\), not .*; pass"):
        DenseIndex.load(tmp_path / "dx", minilm())
    dense.save(tmp_path / "dy")
    with pytest.raises(ValueError, match="built with encoder dtype 'float32', this encoder has 'bfloat16'"):
        DenseIndex.load(tmp_path / "dy", minilm("bfloat16"))
    _edit_meta(tmp_path / "dy", path=str(tmp_path / "moved"))
    with pytest.raises(FileNotFoundError) as e:
        open_backend(str(tmp_path / "dy"))
    assert "moved not found; pass the folder of the encoder" in str(e.value) and "\n" not in str(e.value)
    assert len(open_backend(str(tmp_path / "dy"), encoder=minilm().path)) == 5  # --encoder points at it


def test_registry_opens_each_kind_from_its_folder(dense, small_index, tmp_path):
    small_index.save(tmp_path / "b")
    dense.save(tmp_path / "d")
    HybridIndex(small_index, dense).save(tmp_path / "h")
    kinds = {k: type(open_backend(str(tmp_path / k), encoder=minilm() if k != "b" else None)) for k in "bdh"}
    assert kinds == {"b": Bm25Index, "d": DenseIndex, "h": HybridIndex}
    # BM25 folders written before meta.json had a "kind" still open as BM25
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    del meta["kind"]
    (tmp_path / "b" / "meta.json").write_text(json.dumps(meta))
    assert isinstance(open_backend(str(tmp_path / "b")), Bm25Index)
    with pytest.raises(ValueError, match="holds a 'dense' index, not 'bm25'; build one with `egrpo index --kind bm25`"):
        Bm25Index.load(tmp_path / "d")
    with pytest.raises(ValueError, match="a bm25 index takes no encoder"):
        open_backend(str(tmp_path / "b"), encoder=minilm())


def test_index_command_builds_dense_and_hybrid_folders(tmp_path, capsys, small_docs):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in small_docs))
    for kind in ("dense", "hybrid"):
        out = tmp_path / kind
        assert main(["index", "--corpus", str(corpus), "--out", str(out), "--kind", kind, "--dtype", "float32"]) == 0
        assert f"indexed 5 documents ({kind})" in capsys.readouterr().out
        assert json.loads((out / "meta.json").read_text())["kind"] == kind
        ix = open_backend(str(out), encoder=minilm())
        assert ix.search(["German metropolis"], 1)[0][0].doc_id == "d2"
    assert main(["index", "--corpus", str(corpus), "--out", str(tmp_path / "x"), "--kind", "dense",
                 "--encoder", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "none: encoder folder not found" in err and err.count("\n") == 1


def test_dense_index_served_over_http_matches_in_process(dense):
    srv = make_server(dense, port=0)
    serve_in_thread(srv)
    try:
        client = HttpSearchBackend("http://{}:{}".format(*srv.server_address[:2]), timeout_s=30, max_batch=2)
        qs = [q for q, _ in PARAPHRASES] + [""]
        got, want = client.search(qs, 3), dense.search(qs, 3)
        assert [[(h.doc_id, h.title, h.text, h.url) for h in hs] for hs in got] == \
               [[(h.doc_id, h.title, h.text, h.url) for h in hs] for hs in want]
        assert [h.score for h in got[0]] == pytest.approx([h.score for h in want[0]])
        assert client.fetch(["d4"])[0].title == "Seine"
        client.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_serve_search_command_serves_a_hybrid_folder(dense, small_index, tmp_path):
    HybridIndex(small_index, dense).save(tmp_path / "h")
    port = free_port()
    env = {**os.environ, "EGRPO_CPU_DEVICES": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "egrpo_jax.cli", "serve-search", "--index", str(tmp_path / "h"),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # start-up imports jax and loads the encoder; poll, bounded
            if proc.poll() is not None:
                pytest.fail(f"serve-search exited: {proc.stdout.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    assert json.loads(r.read()) == {"status": "ok", "num_docs": 5}
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("serve-search did not come up")
        client = HttpSearchBackend(url, timeout_s=30)
        assert [h.doc_id for h in client.search(["German metropolis"], 2)[0]] == \
               [h.doc_id for h in HybridIndex(small_index, dense).search(["German metropolis"], 2)[0]]
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
