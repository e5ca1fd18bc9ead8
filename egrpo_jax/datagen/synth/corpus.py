"""Render the world as a corpus: one short document per entity (and per distractor).

A document is its entity's name as title and three sentences: the intro (attribute + year), then
its two relation facts in a random order, each in one of a few templates. The subject of a fact
sentence is the name or, sometimes, an alias, so the policy sees the aliases in use.
"""

from __future__ import annotations

import random

from egrpo_jax.data.schema import Document
from egrpo_jax.datagen.synth.world import Node, World

_INTRO = {
    "person": ("{n} is a {a} born in {y}.", "Born in {y}, {n} is a {a}.", "{n}, a {a}, was born in {y}."),
    "org": ("{n} is a {a} company founded in {y}.", "Founded in {y}, {n} is a {a} company."),
    "city": ("{n} is a {a} town founded in {y}.", "Founded in {y}, {n} is a {a} town."),
    "country": ("{n} is a {a} country founded in {y}.", "Founded in {y}, {n} is a {a} country."),
    "work": ("{n} is a {a} from {y}.", "{n} is a {a} written in {y}."),
}
_FACT = {
    "born_in": ("{s} was born in {o}.", "{s} comes from {o}.", "The birthplace of {s} is {o}."),
    "works_for": ("{s} works for {o}.", "{s} is employed by {o}.", "The employer of {s} is {o}."),
    "based_in": ("{s} is based in {o}.", "The home city of {s} is {o}.", "{s} has its seat in {o}."),
    "founded_by": ("{s} was founded by {o}.", "{o} founded {s}.", "The founder of {s} is {o}."),
    "country": ("{s} lies in {o}.", "{s} is a town in {o}.", "The country of {s} is {o}."),
    "mayor": ("The mayor of {s} is {o}.", "{o} is the mayor of {s}.", "{s} is led by mayor {o}."),
    "capital": ("The capital of {s} is {o}.", "{o} is the capital of {s}."),
    "ruler": ("{s} is ruled by {o}.", "The ruler of {s} is {o}.", "{o} rules {s}."),
    "author": ("{s} was written by {o}.", "{o} wrote {s}.", "The author of {s} is {o}."),
    "publisher": ("{s} was published by {o}.", "{o} published {s}.", "The publisher of {s} is {o}."),
}

# Canonical fact sentence used in the oracle's thoughts ("The employer of X is Y.").
FACT_NOUN = {
    "born_in": "birthplace",
    "works_for": "employer",
    "based_in": "home city",
    "founded_by": "founder",
    "country": "country",
    "mayor": "mayor",
    "capital": "capital",
    "ruler": "ruler",
    "author": "author",
    "publisher": "publisher",
}


def _subject(rng: random.Random, node: Node) -> str:
    # Works keep their article ("The Silent River"); an alias is used about one time in four.
    if node.aliases and node.type != "country" and rng.random() < 0.25:
        return node.aliases[0]
    return node.name


def render_document(rng: random.Random, world: World, node: Node, doc_id: str) -> Document:
    intro = rng.choice(_INTRO[node.type]).format(n=node.name, a=node.attr, y=node.year)
    facts = []
    for rel, obj_id in node.rels.items():
        obj = world.nodes[obj_id]
        facts.append(rng.choice(_FACT[rel]).format(s=_subject(rng, node), o=obj.name))
    rng.shuffle(facts)
    return Document(id=doc_id, title=node.name, text=" ".join([intro, *facts]))


def build_corpus(world: World) -> tuple[list[Document], dict[str, str]]:
    """(documents in a seeded shuffled order, node id -> doc id)."""
    rng = random.Random(f"corpus-{world.config.seed}")
    nodes = [*world.nodes.values(), *world.distractors.values()]
    order = list(range(len(nodes)))
    rng.shuffle(order)  # distractors must not be recognisable by their position / id
    docs, doc_of = [], {}
    for k, i in enumerate(order):
        doc_id = f"doc{k:05d}"
        doc_of[nodes[i].id] = doc_id
    for node in nodes:
        docs.append(render_document(rng, world, node, doc_of[node.id]))
    docs.sort(key=lambda d: d.id)
    return docs, doc_of
