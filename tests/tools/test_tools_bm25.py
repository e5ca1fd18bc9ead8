import json
import logging

import pytest

from egrpo_jax.cli import main
from egrpo_jax.tools.bm25 import Bm25Index
from egrpo_jax.tools.registry import open_backend


def test_search_ranks_the_matching_document_first(small_index):
    (hits,) = small_index.search(["capital of Germany"], 3)
    assert hits[0].doc_id == "d2" and hits[0].url == "https://wiki.example/Berlin"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(hits) == 3


def test_search_stopword_only_and_unknown_queries_return_nothing(small_index):
    assert small_index.search(["the of and", "zzzqqq", ""], 5) == [[], [], []]


def test_topk_larger_than_corpus_returns_matching_docs_only(small_index):
    (hits,) = small_index.search(["river"], 50)
    assert {h.doc_id for h in hits} == {"d4"}


def test_fetch_by_id_and_url(small_index, small_docs):
    a, b, c = small_index.fetch(["d3", "https://wiki.example/Berlin", "nope"])
    assert (a.doc_id, a.title, b.doc_id, c) == ("d3", "Rome", "d2", None)
    assert a.text == small_docs[2].text


def test_save_load_round_trip_gives_identical_results(small_index, tmp_path):
    small_index.save(tmp_path / "ix")
    loaded = Bm25Index.load(tmp_path / "ix")
    qs = ["capital city", "Seine river Paris", "Vienna"]
    assert loaded.search(qs, 3) == small_index.search(qs, 3)
    assert loaded.docs == small_index.docs


def test_load_missing_folder_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="egrpo index"):
        Bm25Index.load(tmp_path)


def test_index_command_builds_a_loadable_folder(tmp_path, capsys, small_docs):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in small_docs))
    assert main(["index", "--corpus", str(corpus), "--out", str(tmp_path / "ix")]) == 0
    assert "indexed 5 documents" in capsys.readouterr().out
    ix = open_backend(str(tmp_path / "ix"))
    assert ix.search(["Budapest"], 1)[0][0].doc_id == "d5"


def test_index_command_reports_bad_corpus_line(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "a", "title": "A", "text": "x"}\n{"id": "b", "title": "B"}\n')
    assert main(["index", "--corpus", str(corpus), "--out", str(tmp_path / "ix")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("corpus.jsonl:2: missing field 'text' (a string)") and "\n" not in err
    assert main(["index", "--corpus", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "ix")]) == 2
    assert "none.jsonl" in capsys.readouterr().err


def test_serve_search_command_bad_index_is_one_line(tmp_path, capsys):
    assert main(["serve-search", "--index", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_open_backend_rejects_unknown_spec(tmp_path):
    with pytest.raises(ValueError, match="expected an http"):
        open_backend(str(tmp_path / "missing.txt"))


def test_index_build_prints_no_bm25s_debug_lines(small_docs, caplog):
    # bm25s logs "Building index from IDs objects" at DEBUG; with any root handler (absl, orbax) that
    # was a stray `DEBUG:bm25s:` line at every train start
    caplog.set_level(logging.DEBUG)
    Bm25Index.build(small_docs)
    assert not [r for r in caplog.records if r.name.startswith("bm25s")]
