"""Answer checking: SQuAD-style normalisation, exact match against aliases, token F1.

Normalisation (documented choice): Unicode NFKC, lower case, punctuation removed, the English
articles a/an/the removed, whitespace collapsed. This is the usual open-domain QA metric
(SQuAD / Search-R1 EM); an optional judge callable can replace exact match, e.g. an LLM judge.
"""

from __future__ import annotations

import collections
import re
import string
import unicodedata
from collections.abc import Callable, Sequence

# A judge receives (prediction, answers) and decides correctness itself.
Judge = Callable[[str, Sequence[str]], bool]

_PUNCT = set(string.punctuation) | {"\u2018", "\u2019", "\u201c", "\u201d", "\u2013", "\u2014"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, strip punctuation and articles, collapse whitespace (after NFKC)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_correct(prediction: str | None, answers: Sequence[str], judge: Judge | None = None) -> bool:
    """True when the prediction matches the answer or one of its aliases.

    With `judge`, the judge alone decides (a missing prediction is still wrong). Without it, exact
    match after `normalize_answer`; an answer that normalises to "" never matches.
    """
    if prediction is None:
        return False
    if judge is not None:
        return bool(judge(prediction, list(answers)))
    pred = normalize_answer(prediction)
    if not pred:
        return False
    return any(pred == normalize_answer(a) for a in answers if normalize_answer(a))


def token_f1(prediction: str | None, answers: Sequence[str]) -> float:
    """Best token-level F1 (bag of normalised words) over the answer and its aliases."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction).split()
    best = 0.0
    for ans in answers:
        gold = normalize_answer(ans).split()
        if not pred or not gold:
            continue
        common = collections.Counter(pred) & collections.Counter(gold)
        same = sum(common.values())
        if same == 0:
            continue
        p, r = same / len(pred), same / len(gold)
        best = max(best, 2 * p * r / (p + r))
    return best
