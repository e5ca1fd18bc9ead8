import pytest
from hypothesis import given, strategies as st

from egrpo_jax.rewards.answer import answer_correct, normalize_answer, token_f1


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("  a Tale of Two Cities.", "tale of two cities"),
        ("Rock-'n'-Roll", "rock n roll"),
        ("ＡＢＣ", "abc"),  # NFKC folds full-width letters
        ("theater", "theater"),  # articles only as whole words
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_answer_correct_aliases_and_none():
    assert answer_correct("the United Kingdom", ["UK", "United Kingdom"])
    assert answer_correct("uk.", ["UK", "United Kingdom"])
    assert not answer_correct("United", ["United Kingdom"])
    assert not answer_correct(None, ["x"])
    assert not answer_correct("", [""])  # empty never matches empty
    assert not answer_correct("the", ["a"])  # both normalise to ""


def test_judge_hook_replaces_exact_match():
    calls = []

    def judge(pred, answers):
        calls.append((pred, answers))
        return "paris" in pred.lower()

    assert answer_correct("It is Paris, France", ["Paris"], judge=judge)
    assert not answer_correct("Paris", ["Paris"], judge=lambda p, a: False)
    assert calls == [("It is Paris, France", ["Paris"])]
    assert not answer_correct(None, ["Paris"], judge=judge)


def test_token_f1_hand_computed():
    # pred {barack, obama}, gold {obama}: p = 1/2, r = 1 -> f1 = 2/3
    assert token_f1("Barack Obama", ["Obama"]) == pytest.approx(2 / 3)
    assert token_f1("Barack Obama", ["Michelle", "barack obama"]) == 1.0
    assert token_f1("x", ["y"]) == 0.0
    assert token_f1(None, ["y"]) == 0.0
    # duplicates count with multiplicity: pred [a1 a1 b], gold [a1 b b]: common 2, p=r=2/3
    assert token_f1("a1 a1 b", ["a1 b b"]) == pytest.approx(2 / 3)


@given(st.text(max_size=40))
def test_normalize_idempotent_and_exact_match_reflexive(s):
    n = normalize_answer(s)
    assert normalize_answer(n) == n
    assert answer_correct(s, [s]) == bool(n)
    if n:
        assert token_f1(s, [s]) == 1.0
