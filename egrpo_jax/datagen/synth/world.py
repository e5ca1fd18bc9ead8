"""A synthetic knowledge graph of invented entities with typed, functional relations.

Five entity types (person, org, city, country, work). Every entity has exactly one value for each
relation of its type (so a relation chain has one answer), one distinguishing attribute (a
profession, industry, ...) and a year that no other entity or distractor shares (so a fuzzed
description such as "the potter born in 1842" names exactly one entity). Distractors are extra
entities with a similar name (one syllable or word changed) and their own facts; they get
documents but never appear in questions.

Everything is drawn from one ``random.Random(seed)``: the same config gives the same world.
"""

from __future__ import annotations

import dataclasses
import random

from egrpo_jax.datagen.synth.names import NameBank, mutate, word

TYPES = ("person", "org", "city", "country", "work")

# relation -> (subject type, object type). Each type has exactly two outgoing relations.
RELATIONS: dict[str, tuple[str, str]] = {
    "born_in": ("person", "city"),
    "works_for": ("person", "org"),
    "based_in": ("org", "city"),
    "founded_by": ("org", "person"),
    "country": ("city", "country"),
    "mayor": ("city", "person"),
    "capital": ("country", "city"),
    "ruler": ("country", "person"),
    "author": ("work", "person"),
    "publisher": ("work", "org"),
}
OUT_RELATIONS = {t: [r for r, (s, _) in RELATIONS.items() if s == t] for t in TYPES}

# The distinguishing attribute of each type (its key, its values).
ATTRIBUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "person": ("profession", ("potter", "sailor", "baker", "painter", "farmer", "singer", "doctor", "weaver")),
    "org": ("industry", ("mining", "shipping", "textile", "banking", "printing", "brewing")),
    "city": ("feature", ("river", "harbour", "mountain", "desert", "forest", "lake")),
    "country": ("climate", ("cold", "warm", "dry", "rainy")),
    "work": ("genre", ("novel", "poem", "play", "song", "chronicle")),
}
_ORG_KINDS = ("Guild", "Company", "Society", "Bank", "Union")
_COUNTRY_ENDS = ("ria", "nia", "land")
_WORK_ADJ = ["Silent", "Golden", "Hidden", "Broken", "Last", "Red", "Iron", "Glass", "Winter", "Northern", "Quiet", "Lost", "Bright", "Hollow", "Crimson", "Distant"]
_WORK_NOUN = ["River", "Garden", "Tower", "Crown", "Lantern", "Harbor", "Song", "Mirror", "Road", "Bridge", "Forest", "Letter", "Orchard", "Bell"]


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    n_people: int = 120
    n_orgs: int = 40
    n_cities: int = 50
    n_countries: int = 10
    n_works: int = 50
    n_questions: int = 1500
    min_hops: int = 2
    max_hops: int = 4
    fuzz_rate: float = 0.3  # probability that the question describes its start entity instead of naming it
    distractor_rate: float = 0.3  # fraction of people/orgs/cities/works that get a similar-named distractor
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    # questions held out of the SFT demos for RL only (split "rl"): RL then trains on questions the
    # cold start never imitated, as held-out evaluation does (0 = RL samples the train split)
    rl_fraction: float = 0.0

    def validate(self) -> None:
        for k in ("n_people", "n_orgs", "n_cities", "n_countries", "n_works", "n_questions"):
            if getattr(self, k) < 1:
                raise ValueError(f"WorldConfig.{k} must be >= 1, got {getattr(self, k)}")
        if self.n_cities < self.n_countries:
            raise ValueError(f"WorldConfig.n_cities ({self.n_cities}) must be >= n_countries ({self.n_countries})")
        if not 1 <= self.min_hops <= self.max_hops <= 6:
            raise ValueError(f"WorldConfig hops need 1 <= min_hops <= max_hops <= 6, got {self.min_hops}..{self.max_hops}")
        for k in ("fuzz_rate", "distractor_rate", "dev_fraction", "test_fraction", "rl_fraction"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ValueError(f"WorldConfig.{k} must be in [0, 1], got {getattr(self, k)}")
        if self.dev_fraction + self.test_fraction + self.rl_fraction >= 1.0:
            raise ValueError("WorldConfig.dev_fraction + test_fraction + rl_fraction must be < 1")
        n_years = sum(self.counts.values()) * (1 + self.distractor_rate)
        if n_years > 1800:
            raise ValueError(f"world too large ({int(n_years)} entities); every entity needs a distinct year (max 1800)")

    @property
    def counts(self) -> dict[str, int]:
        return {
            "person": self.n_people,
            "org": self.n_orgs,
            "city": self.n_cities,
            "country": self.n_countries,
            "work": self.n_works,
        }


@dataclasses.dataclass
class Node:
    id: str
    type: str
    name: str
    aliases: tuple[str, ...]
    attr: str  # the value of ATTRIBUTES[type]
    year: int
    rels: dict[str, str]  # relation -> object node id
    distractor_of: str | None = None

    @property
    def fuzz(self) -> str:
        """A description that names this node uniquely (the year is unique in the world)."""
        return {
            "person": f"the {self.attr} born in {self.year}",
            "org": f"the {self.attr} company founded in {self.year}",
            "city": f"the {self.attr} town founded in {self.year}",
            "country": f"the {self.attr} country founded in {self.year}",
            "work": f"the {self.attr} from {self.year}",
        }[self.type]

    @property
    def fuzz_query(self) -> str:
        """A search query for the fuzzed description (its content words)."""
        kind = {"person": "born", "org": "company founded", "city": "town founded", "country": "country founded"}
        return f"{self.attr} {kind.get(self.type, '')} {self.year}".replace("  ", " ")


@dataclasses.dataclass
class World:
    config: WorldConfig
    nodes: dict[str, Node]  # real entities, in creation order
    distractors: dict[str, Node]

    def of_type(self, t: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.type == t]

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id] if node_id in self.nodes else self.distractors[node_id]


def _name(bank: NameBank, rng: random.Random, t: str) -> tuple[str, tuple[str, ...]]:
    if t == "person":
        family = bank.fresh_word(2)
        bank.alias_words.add(family)

        def make() -> str:
            given = word(rng, 2)
            while given in bank.alias_words:  # a given name must never equal someone's alias
                given = word(rng, 2)
            return f"{given} {family}"

        return bank.take(make), (family,)
    if t == "org":
        head = bank.fresh_word(rng.choice((2, 3)))
        bank.alias_words.add(head)
        return bank.take(lambda: f"{head} {rng.choice(_ORG_KINDS)}"), (head,)
    if t == "city":
        return bank.take(lambda: bank.fresh_word(rng.choice((2, 3)))), ()
    if t == "country":
        name = bank.take(lambda: bank.fresh_word(2) + rng.choice(_COUNTRY_ENDS))
        return name, (f"Republic of {name}",)
    name = bank.take(lambda: f"The {rng.choice(_WORK_ADJ)} {rng.choice(_WORK_NOUN)}")
    return name, (name[len("The ") :],)


def _distractor_name(bank: NameBank, rng: random.Random, node: Node) -> tuple[str, tuple[str, ...]]:
    """A name one syllable / word away from `node`'s; its aliases stay unique too."""
    for _ in range(200):
        new_word = None  # the changed word, which must be new to the whole world
        if node.type == "person":
            given, family = node.name.split(" ", 1)
            new_word = mutate(rng, family)
            name, aliases = f"{given} {new_word}", (new_word,)
        elif node.type == "org":
            head, kind = node.name.split(" ", 1)
            new_word = mutate(rng, head)
            name, aliases = f"{new_word} {kind}", (new_word,)
        elif node.type == "city":
            new_word = mutate(rng, node.name)
            name, aliases = new_word, ()
        else:  # work: swap the noun
            adj = node.name.split()[1]
            name = f"The {adj} {rng.choice(_WORK_NOUN)}"
            aliases = (name[len("The ") :],)
        if name not in bank.used and (new_word is None or new_word not in bank.words):
            bank.used.add(name)
            bank.words.update(name.split())
            bank.alias_words.update(aliases)
            return name, aliases
    raise RuntimeError(f"no distractor name found for {node.name!r}")


def build_world(config: WorldConfig) -> World:
    config.validate()
    rng = random.Random(f"world-{config.seed}")
    bank = NameBank(rng)
    n_total = sum(config.counts.values())
    n_distr = round(config.distractor_rate * (n_total - config.n_countries))
    # Distinct years make every fuzzed description unique; plausible years when the world is small.
    years = rng.sample(range(1100 if n_total + n_distr <= 900 else 200, 2000), n_total + n_distr)
    year_iter = iter(years)
    nodes: dict[str, Node] = {}
    for t in TYPES:
        values = ATTRIBUTES[t][1]
        for i in range(config.counts[t]):
            name, aliases = _name(bank, rng, t)
            nid = f"{t}/{i}"
            nodes[nid] = Node(nid, t, name, aliases, rng.choice(values), next(year_iter), {})
    by_type = {t: [n for n in nodes.values() if n.type == t] for t in TYPES}

    # Cities are spread over countries first so every country has a city to be its capital.
    countries, cities = by_type["country"], by_type["city"]
    order = list(range(len(cities)))
    rng.shuffle(order)
    for k, ci in enumerate(order):
        cities[ci].rels["country"] = countries[k % len(countries)].id if k < len(countries) else rng.choice(
            countries
        ).id
    for c in countries:
        c.rels["capital"] = rng.choice([x for x in cities if x.rels["country"] == c.id]).id
    for n in nodes.values():
        for r in OUT_RELATIONS[n.type]:
            if r not in n.rels:
                n.rels[r] = rng.choice(by_type[RELATIONS[r][1]]).id

    distractors: dict[str, Node] = {}
    candidates = [n for n in nodes.values() if n.type != "country"]
    for i, real in enumerate(rng.sample(candidates, n_distr)):
        name, aliases = _distractor_name(bank, rng, real)
        rels = {r: rng.choice(by_type[RELATIONS[r][1]]).id for r in OUT_RELATIONS[real.type]}
        if real.type == "city":  # a distractor town is never a capital, so any country will do
            rels["country"] = rng.choice(countries).id
        did = f"distractor/{real.type}/{i}"
        distractors[did] = Node(
            did, real.type, name, aliases, rng.choice(ATTRIBUTES[real.type][1]), next(year_iter), rels, real.id
        )
    return World(config, nodes, distractors)
