import collections

import pytest

from egrpo_jax.agent.parse import parse_rollout, parse_segment
from egrpo_jax.datagen.synth.build import DEMO_TOOLS, build_synthetic
from egrpo_jax.datagen.synth.oracle import PERFECT, DemoConfig, Oracle
from egrpo_jax.datagen.synth.questions import chain_key
from egrpo_jax.datagen.synth.world import RELATIONS, WorldConfig, build_world
from egrpo_jax.rewards.answer import answer_correct
from egrpo_jax.rewards.entities import match_rate
from egrpo_jax.tools.bm25 import Bm25Index

SMALL = WorldConfig(seed=5, n_people=30, n_orgs=10, n_cities=12, n_countries=4, n_works=10, n_questions=150)


@pytest.fixture(scope="module")
def default_data():
    return build_synthetic(WorldConfig(), DemoConfig(recovered_rate=0.2, wrong_rate=0.2))


def _dump(d):
    return ([q.to_dict() for s in ("train", "dev", "test") for q in d.splits[s]], [x.to_dict() for x in d.corpus],
            d.demos)


def test_deterministic_by_seed():
    a, b = build_synthetic(SMALL), build_synthetic(SMALL)
    assert _dump(a) == _dump(b)
    c = build_synthetic(WorldConfig(**{**SMALL.__dict__, "seed": 6}))
    assert _dump(a)[0] != _dump(c)[0] and _dump(a)[1] != _dump(c)[1]


def test_world_is_consistent():
    w = build_world(WorldConfig())
    names = [n.name for n in [*w.nodes.values(), *w.distractors.values()]]
    assert len(names) == len(set(names))
    years = [n.year for n in [*w.nodes.values(), *w.distractors.values()]]
    assert len(years) == len(set(years))  # fuzzed descriptions are unique
    aliases = [a for n in [*w.nodes.values(), *w.distractors.values()] for a in n.aliases]
    assert len(aliases) == len(set(aliases))
    for n in w.nodes.values():
        for r, o in n.rels.items():
            assert RELATIONS[r] == (n.type, w.nodes[o].type)
        if n.type == "country":
            assert w.nodes[n.rels["capital"]].rels["country"] == n.id
    assert all(d.distractor_of in w.nodes for d in w.distractors.values())


def test_questions_and_splits(default_data):
    d = default_data
    qs = [q for s in d.splits.values() for q in s]
    assert len(qs) == WorldConfig().n_questions
    assert len({q.id for q in qs}) == len(qs)
    hops = collections.Counter(q.metadata["hops"] for q in qs)
    assert set(hops) == {2, 3, 4}
    for q in qs:
        assert len(q.entities) == q.metadata["hops"] + 1 and q.entities[-1].name == q.answer
    train = {chain_key(q) for q in d.splits["train"]}
    test = {chain_key(q) for q in d.splits["test"]}
    assert len(d.splits["test"]) > 100 and not train & test
    def starts(s):
        return {q.metadata["chain"][0] for q in d.splits[s]}

    assert not starts("train") & starts("test") and not starts("train") & starts("dev")
    assert 0.25 < sum(q.metadata["fuzzed"] for q in qs) / len(qs) < 0.35


def test_rl_split_holds_questions_out_of_the_demos_and_keeps_test():
    """rl_fraction takes whole start-entity groups out of train (no demos for them); test and dev
    are the same questions as without it, so both worlds are evaluated alike."""
    base = build_synthetic(SMALL)
    held = build_synthetic(WorldConfig(**{**SMALL.__dict__, "rl_fraction": 0.2}))
    assert "rl" not in base.splits
    for s in ("test", "dev"):
        assert [q.id for q in held.splits[s]] == [q.id for q in base.splits[s]]
    rl, train = held.splits["rl"], held.splits["train"]
    assert rl and len(train) + len(rl) == len(base.splits["train"])
    starts = lambda qs: {q.metadata["chain"][0] for q in qs}  # noqa: E731
    assert not starts(rl) & starts(train)
    demo_questions = {d["question"] for d in held.demos}
    assert len(held.demos) == len(train) and not demo_questions & {q.question for q in rl}
    with pytest.raises(ValueError, match="rl_fraction"):
        WorldConfig(**{**SMALL.__dict__, "rl_fraction": 0.85}).validate()


def test_oracle_answers_every_question_with_real_bm25(default_data):
    d = default_data
    oracle = Oracle(d.world, d.doc_of, Bm25Index.build(d.corpus), DEMO_TOOLS)
    try:
        for q in (q for s in d.splits.values() for q in s):
            demo = oracle.demo(q, PERFECT)  # raises Unanswerable if a needed fact is not in the results
            rollout = parse_rollout("".join(s["text"] for s in demo["segments"]))
            assert rollout.error is None, (q.id, rollout.detail)
            assert answer_correct(rollout.answer, q.answers)
            assert len(rollout.calls) == q.metadata["hops"]
            assert match_rate(rollout.thoughts, [e.variants for e in q.entities]) == 1.0
    finally:
        oracle.close()


def test_demo_format_and_imperfect_fraction(default_data):
    demos = default_data.demos
    assert len(demos) == len(default_data.splits["train"])
    by_id = {q.id: q for q in default_data.splits["train"]}
    kinds = collections.Counter(x["kind"] for x in demos)
    assert 0.15 < kinds["recovered"] / len(demos) < 0.25
    assert 0.15 < kinds["wrong_answer"] / len(demos) < 0.25
    for x in demos:
        roles = [s["role"] for s in x["segments"]]
        assert roles == ["model", "tool"] * (len(roles) // 2) + ["model"]
        for s in x["segments"]:
            if s["role"] == "model":
                assert parse_segment(s["text"]).error is None
            else:
                assert s["text"].startswith("\n<tool_response>\n") and s["text"].endswith("\n</tool_response>\n")
        q = by_id[x["question_id"]]
        assert x["correct"] == answer_correct(x["answer"], q.answers) == (x["kind"] != "wrong_answer")
        n_calls = len(roles) // 2
        if x["kind"] == "recovered":
            assert n_calls == q.metadata["hops"] + 1
        if x["kind"] == "wrong_answer":  # a near-miss: its thoughts still hold some of the chain
            thoughts = parse_rollout("".join(s["text"] for s in x["segments"])).thoughts
            assert 0 < match_rate(thoughts, [e.variants for e in q.entities]) < 1


def test_gold_docs_and_hop_queries_for_retrieval_eval():
    d = build_synthetic(SMALL)
    docs = {x.id: x for x in d.corpus}
    for q in (q for s in d.splits.values() for q in s):
        chain, m = q.metadata["chain"], q.metadata
        assert len(m["gold_docs"]) == len(m["hop_queries"]) == m["hops"]
        for k, (gold, query) in enumerate(zip(m["gold_docs"], m["hop_queries"])):
            assert gold == [d.doc_of[chain[k]]]
            doc = docs[gold[0]]
            # the gold document is about the hop's subject and names its object; the query names the subject
            assert doc.title == q.entities[k].name and q.entities[k + 1].name in doc.text
            assert q.entities[k].name in query


def test_early_stop_demos_answer_one_hop_too_early(default_data):
    from egrpo_jax.datagen.synth.oracle import EARLY_STOP

    d = default_data
    oracle = Oracle(d.world, d.doc_of, Bm25Index.build(d.corpus), DEMO_TOOLS)
    try:
        qs = [q for q in d.splits["train"] if q.metadata["hops"] >= 2][:40]
        for i, q in enumerate(qs):
            import random

            demo = oracle.demo(q, EARLY_STOP, random.Random(i))
            rollout = parse_rollout("".join(s["text"] for s in demo["segments"]))
            assert rollout.error is None and demo["kind"] == EARLY_STOP and not demo["correct"]
            n_calls = len(rollout.calls)
            assert 1 <= n_calls < q.metadata["hops"]
            # it answers the entity its last search found: chain node n_calls, a near-miss
            assert rollout.answer == q.entities[n_calls].name
            rate = match_rate(rollout.thoughts, [e.variants for e in q.entities])
            assert rate == pytest.approx((n_calls + 1) / len(q.entities))
    finally:
        oracle.close()
    cfg = DemoConfig(recovered_rate=0.1, wrong_rate=0.2, early_stop_rate=0.3)
    assert [cfg.kind(u) for u in (0.05, 0.15, 0.35, 0.45, 0.65)] == [
        "recovered", "wrong_answer", "early_stop", "early_stop", "perfect"]
    with pytest.raises(ValueError, match="must be <= 1"):
        DemoConfig(recovered_rate=0.5, wrong_rate=0.3, early_stop_rate=0.3)
