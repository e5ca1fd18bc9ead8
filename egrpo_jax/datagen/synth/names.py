"""Invented names from a small syllable inventory (so a tiny BPE tokenizer learns them fast)."""

from __future__ import annotations

import random

# Consonant-vowel syllables: 12 x 5 = 60, enough for thousands of distinct 2-3 syllable words.
_CONS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t"]
_VOWELS = ["a", "e", "i", "o", "u"]
SYLLABLES = [c + v for c in _CONS for v in _VOWELS]


def word(rng: random.Random, n_syll: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(n_syll)).capitalize()


def mutate(rng: random.Random, w: str) -> str:
    """A similar-looking word: one syllable (2 letters) replaced. Used for distractor names."""
    sylls = [w[i : i + 2].lower() for i in range(0, len(w), 2)]
    i = rng.randrange(len(sylls))
    options = [s for s in SYLLABLES if s != sylls[i] and s[0] == sylls[i][0]]  # keep the consonant
    sylls[i] = rng.choice(options)
    return "".join(sylls).capitalize()


class NameBank:
    """Hands out names and remembers them, so no two entities (or distractors) share a name."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.words: set[str] = set()  # every single word used in any name
        self.alias_words: set[str] = set()  # one-word aliases (family names, org heads)

    def take(self, make) -> str:
        for _ in range(1000):
            name = make()
            if name not in self.used:
                self.used.add(name)
                self.words.update(name.split())
                return name
        raise RuntimeError("name space exhausted; lower the world size")

    def fresh_word(self, n_syll: int) -> str:
        """A word never used before in any name (keeps short aliases unambiguous)."""
        for _ in range(1000):
            w = word(self.rng, n_syll)
            if w not in self.words:
                self.words.add(w)
                return w
        raise RuntimeError("word space exhausted; lower the world size")
