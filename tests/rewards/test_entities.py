from hypothesis import given, strategies as st

from egrpo_jax.data.schema import Entity
from egrpo_jax.rewards.entities import match_rate, matched_entities


def test_whole_words_only():
    ents = ["Rome"]
    assert matched_entities(["Romeo met Jerome"], ents) == set()
    assert matched_entities(["I think Rome, yes."], ents) == {0}
    assert matched_entities(["(rome)"], ents) == {0}


def test_case_nfkc_and_whitespace_folding():
    ents = ["New  York City", "Ｔｏｋｙｏ", "STRASSE"]
    thoughts = ["maybe new\nyork   city is it", "or tokyo", "Straße"]
    # casefold maps ß -> ss, NFKC maps full-width letters
    assert matched_entities(thoughts, ents) == {0, 1, 2}


def test_strict_is_plain_exact_substring():
    ents = ["Rome", "new york"]
    thoughts = ["Romeo went to New York"]
    assert matched_entities(thoughts, ents, strict=True) == {0}  # substring, case-sensitive
    assert matched_entities(thoughts, ents) == {1}


def test_variants_any_and_entity_objects():
    ents = [["United Kingdom", "UK", "Britain"], Entity("Paris", ("City of Light",)), ["", "  "]]
    assert matched_entities(["the uk is big"], ents) == {0}
    assert matched_entities(["the city of light"], ents) == {1}
    assert matched_entities(["anything"], ents) == set()  # empty variants never match


def test_each_thought_block_separately():
    assert matched_entities(["New", "York"], ["New York"]) == set()
    assert matched_entities([], ["x"]) == set()


def test_punctuation_edges():
    assert matched_entities(["I like C++ a lot"], ["C++"]) == {0}
    assert matched_entities(["I like C++a"], ["c++"]) == {0}  # non-word edge needs no boundary
    assert matched_entities(["AT&T's network"], ["AT&T"]) == {0}


def test_match_rate():
    assert match_rate(["Paris and Rome"], ["Paris", "Rome", "Oslo", "Bern"]) == 0.5
    assert match_rate(["x"], []) == 0.0


words = st.text(alphabet="abcXYZ", min_size=1, max_size=5)


@given(st.lists(words, min_size=1, max_size=6), st.lists(words, min_size=1, max_size=4))
def test_property_inserted_entity_always_found(context, ents):
    thought = " ".join(context + ents + context)
    assert matched_entities([thought], ents) == set(range(len(ents)))
    # strict substring is implied by the default match when text already normalised
    assert matched_entities([thought], ents, strict=True) == set(range(len(ents)))


@given(st.lists(words, max_size=6), st.lists(words, min_size=1, max_size=4))
def test_property_default_match_implies_casefolded_substring(context, ents):
    thought = " ".join(context)
    for i in matched_entities([thought], ents):
        assert ents[i].casefold() in thought.casefold()
