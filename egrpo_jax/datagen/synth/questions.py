"""Multi-hop questions by walking the world graph, and train/dev/test splits.

A question is a relation chain e0 -r1-> e1 -r2-> ... -> eh. Only e0 is mentioned, by name or, with
probability ``fuzz_rate``, by its unique description ("the potter born in 1842"); every later node is
hidden behind a relation phrase ("the employer of ..."). Ground-truth entities are e0..eh (with
aliases); the answer is eh. No node repeats in a chain. One question per distinct chain.

For retrieval evaluation, metadata also holds `hop_queries` (hop k as a sub-question about the named
e_{k-1}: "the employer of Ada Smith") and, once the corpus exists, `gold_docs` (hop k's gold
document: e_{k-1}'s, which states the fact; see `with_gold_docs`).

Splits are by *start entity*: all questions that start at one entity land in the same split, so no
test chain equals (or starts like) a train chain.
"""

from __future__ import annotations

import dataclasses
import random

from egrpo_jax.data.schema import Entity, QARecord
from egrpo_jax.data.splits import chain_key, split_by_start  # noqa: F401 - chain_key re-exported
from egrpo_jax.datagen.synth.world import OUT_RELATIONS, RELATIONS, Node, World

# How a hidden node is described from its predecessor's description x.
_PHRASE = {
    "born_in": ("the birthplace of {x}", "the town where {x} was born"),
    "works_for": ("the employer of {x}", "the company that {x} works for"),
    "based_in": ("the home city of {x}", "the town where {x} is based"),
    "founded_by": ("the founder of {x}", "the person who founded {x}"),
    "country": ("the country of {x}",),
    "mayor": ("the mayor of {x}",),
    "capital": ("the capital of {x}",),
    "ruler": ("the ruler of {x}",),
    "author": ("the author of {x}", "the person who wrote {x}"),
    "publisher": ("the publisher of {x}", "the company that published {x}"),
}
_ASK = {
    "person": ("Who is {d}?", "Name {d}."),
    "org": ("Which company is {d}?", "What is {d}?"),
    "city": ("Which town is {d}?", "What is {d}?"),
    "country": ("Which country is {d}?", "What is {d}?"),
    "work": ("What is {d}?",),
}


def describe(rng: random.Random, start_text: str, relations: list[str]) -> str:
    d = start_text
    for r in relations:
        d = rng.choice(_PHRASE[r]).format(x=d)
    return d


def _walk(rng: random.Random, world: World, start: Node, hops: int) -> tuple[list[str], list[str]] | None:
    chain, rels = [start.id], []
    for _ in range(hops):
        node = world.nodes[chain[-1]]
        options = [r for r in OUT_RELATIONS[node.type] if node.rels[r] not in chain]
        if not options:
            return None
        r = rng.choice(options)
        rels.append(r)
        chain.append(node.rels[r])
    return chain, rels


def entity_of(node: Node) -> Entity:
    return Entity(node.name, node.aliases)


def make_questions(world: World) -> list[QARecord]:
    cfg = world.config
    rng = random.Random(f"questions-{cfg.seed}")
    starts = list(world.nodes.values())
    seen: set[tuple[str, ...]] = set()
    out: list[QARecord] = []
    attempts = 0
    while len(out) < cfg.n_questions and attempts < 50 * cfg.n_questions:
        attempts += 1
        hops = rng.randint(cfg.min_hops, cfg.max_hops)
        walked = _walk(rng, world, rng.choice(starts), hops)
        if walked is None or tuple(walked[0]) in seen:
            continue
        chain, rels = walked
        seen.add(tuple(chain))
        nodes = [world.nodes[i] for i in chain]
        fuzzed = rng.random() < cfg.fuzz_rate
        start_text = nodes[0].fuzz if fuzzed else nodes[0].name
        d = describe(rng, start_text, rels)
        ans = nodes[-1]
        question = rng.choice(_ASK[ans.type]).format(d=d)
        question = question[0].upper() + question[1:]
        out.append(
            QARecord(
                id=f"syn{cfg.seed}-{len(out):05d}",
                question=question,
                answer=ans.name,
                answer_aliases=ans.aliases,
                entities=tuple(entity_of(n) for n in nodes),
                metadata={
                    "world": "synthetic",
                    "hops": hops,
                    "chain": chain,
                    "relations": rels,
                    "fuzzed": fuzzed,
                    "types": [n.type for n in nodes],
                    "hop_queries": [_PHRASE[r][0].format(x=n.name) for n, r in zip(nodes, rels)],
                },
            )
        )
    return out


def with_gold_docs(questions: list[QARecord], doc_of: dict[str, str]) -> list[QARecord]:
    """Questions with metadata['gold_docs']: per hop, the ids of the documents stating it (a node's
    document renders its own out-relations, so hop k is stated by chain[k-1]'s document)."""
    out = []
    for q in questions:
        gold = [[doc_of[n]] for n in q.metadata["chain"][:-1]]
        out.append(dataclasses.replace(q, metadata={**q.metadata, "gold_docs": gold}))
    return out


def split_questions(world: World, questions: list[QARecord]) -> dict[str, list[QARecord]]:
    cfg = world.config
    return split_by_start(questions, cfg.dev_fraction, cfg.test_fraction, cfg.seed, cfg.rl_fraction)


assert set(_PHRASE) == set(RELATIONS)
