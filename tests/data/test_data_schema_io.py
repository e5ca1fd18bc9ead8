import json

import pytest

from egrpo_jax.data.io import (
    DataError,
    load_corpus,
    load_questions,
    read_questions,
    write_corpus,
    write_questions,
)
from egrpo_jax.data.schema import Document, Entity, QARecord

GOOD = {"id": "q1", "question": "Who?", "answer": "Ann", "answer_aliases": ["A."],
        "entities": [{"name": "Ann", "aliases": ["A."]}]}


def _write(tmp_path, lines, name="q.jsonl"):
    p = tmp_path / name
    p.write_bytes(b"".join((l if isinstance(l, bytes) else json.dumps(l).encode()) + b"\n" for l in lines))  # noqa: E741
    return p


def test_roundtrip(tmp_path):
    recs = [QARecord("a", "Q ü?", "Ans", ("x",), (Entity("E", ("e1",)), Entity("F")), {"hops": 2}),
            QARecord("b", "Q2", "B", (), (Entity("G"),))]
    p = tmp_path / "q.jsonl"
    write_questions(p, recs)
    assert load_questions(p) == recs
    docs = [Document("d1", "T", "text é"), Document("d2", "", "x", url="http://u")]
    write_corpus(tmp_path / "c.jsonl", docs)
    assert load_corpus(tmp_path / "c.jsonl") == docs


@pytest.mark.parametrize(
    "bad, msg",
    [
        ({k: v for k, v in GOOD.items() if k != "answer"}, "missing field 'answer'"),
        ({**GOOD, "question": 3}, "field 'question' must be a string, got int"),
        ({**GOOD, "entities": []}, "field 'entities' is empty"),
        ({**GOOD, "entities": [{"aliases": []}]}, "missing field 'entities[0].name'"),
        ({**GOOD, "entities": [{"name": "x", "aliases": "y"}]}, "field 'entities[0].aliases' must be a list"),
        ({**GOOD, "answer_aliases": [1]}, "field 'answer_aliases' must be a list of strings"),
        ({**GOOD, "metadata": [1]}, "field 'metadata' must be an object"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, bad, msg):
    p = _write(tmp_path, [GOOD, {**GOOD, "id": "q2"}, bad])
    with pytest.raises(DataError) as e:
        load_questions(p)
    assert str(e.value).startswith(f"{p}:3: ")
    assert msg in str(e.value)


def test_duplicate_ids_and_utf8_and_json(tmp_path):
    p = _write(tmp_path, [GOOD, b"", GOOD])
    with pytest.raises(DataError, match=r"q.jsonl:3: field 'id' duplicates id 'q1' first seen on line 1"):
        load_questions(p)
    p = _write(tmp_path, [GOOD, b'{"id": "\xff"}'])
    with pytest.raises(DataError, match=r"q.jsonl:2: invalid UTF-8"):
        load_questions(p)
    p = _write(tmp_path, [b"{nope"])
    with pytest.raises(DataError, match=r"q.jsonl:1: invalid JSON"):
        load_questions(p)
    p = _write(tmp_path, [{"id": "d", "title": "t"}], "c.jsonl")
    with pytest.raises(DataError, match=r"c.jsonl:1: missing field 'text'"):
        load_corpus(p)


def test_skip_bad_reports_count(tmp_path, caplog):
    p = _write(tmp_path, [GOOD, {**GOOD, "id": "q2", "entities": []}, b"\xfe\xff", GOOD, {**GOOD, "id": "q3"}])
    recs, errors = read_questions(p, skip_bad=True)
    assert [r.id for r in recs] == ["q1", "q3"]
    assert len(errors) == 3 and errors[0].startswith(f"{p}:2:")
    with caplog.at_level("WARNING"):
        assert len(load_questions(p, skip_bad=True)) == 2
    assert "skipped 3 bad line(s)" in caplog.text
