"""Stop matching that does not depend on how a BPE merges: an automaton over each token's text.

A real BPE (SmolLM2, Qwen) splits "</tool_call>" in many ways and merges its ends with the text
around it ('"}</', '>.', '>\\n\\n'), so comparing id sequences misses stops and rows run to their
budget. Instead the stop strings become one automaton over characters (Aho-Corasick with full
transitions), lifted to tokens: `table[s, t]` is the state after reading token t's text from
state s, or -(1 + i) when stop string i is completed inside that text. The engine's decode loop
does one gather per step. A stop may end inside a token ('>.'): the segment then ends with that
whole token, and the parser treats what follows the tag as text after the action.

Id-sequence stops (tests, tokenizer-free use) are the same automaton over token ids.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from egrpo_jax.tokenizer_api import TokenizerLike


def _automaton(patterns: Sequence[Sequence[Hashable]]):
    """(states: prefix -> id, step(state, symbol) -> next state or -(1 + pattern index))."""
    prefixes: dict[tuple, int] = {(): 0}
    for p in patterns:
        for k in range(1, len(p)):
            prefixes.setdefault(tuple(p[:k]), len(prefixes))
    by_id = {v: k for k, v in prefixes.items()}
    full = [tuple(p) for p in patterns]
    memo: dict[tuple[int, Hashable], int] = {}

    def step(state: int, sym: Hashable) -> int:
        key = (state, sym)
        if key not in memo:
            w = by_id[state] + (sym,)
            hit = next((i for i, p in enumerate(full) if w[len(w) - len(p):] == p), None)
            if hit is not None:
                memo[key] = -(1 + hit)
            else:  # the longest suffix of w that is still a pattern prefix
                memo[key] = next(prefixes[w[k:]] for k in range(len(w) + 1) if w[k:] in prefixes)
        return memo[key]

    return prefixes, step


class StopTable:
    """The token-level stop automaton: `table` int32 [states, vocab]; state 0 = nothing matched."""

    def __init__(self, table: np.ndarray, num_stops: int):
        self.table = np.asarray(table, np.int32)
        self.num_stops = int(num_stops)

    @property
    def num_states(self) -> int:
        return self.table.shape[0]

    @classmethod
    def empty(cls, vocab_size: int) -> StopTable:
        return cls(np.zeros((1, vocab_size), np.int32), 0)

    @classmethod
    def from_ids(cls, sequences: Sequence[Sequence[int]], vocab_size: int) -> StopTable:
        """Stops that are exact token-id sequences."""
        seqs = [[int(t) for t in s] for s in sequences]
        for i, s in enumerate(seqs):
            if not s:
                raise ValueError(f"engine.stop_sequences[{i}] is empty")
            bad = [t for t in s if not 0 <= t < vocab_size]
            if bad:
                raise ValueError(f"engine.stop_sequences[{i}]: token id {bad[0]} outside [0, {vocab_size})")
        if not seqs:
            return cls.empty(vocab_size)
        states, step = _automaton(seqs)
        table = np.zeros((len(states), vocab_size), np.int32)  # ids in no stop go back to state 0
        for s in range(len(states)):
            for t in {t for q in seqs for t in q}:
                table[s, t] = step(s, t)
        return cls(table, len(seqs))

    @classmethod
    def from_strings(cls, strings: Sequence[str], token_texts: Sequence[str], vocab_size: int | None = None) -> StopTable:
        """Stops that are strings, matched on the decoded text of each token (`token_texts[id]`).

        Ids at or past len(token_texts) (a model vocabulary padded past the tokenizer's) read as
        empty text: they leave the state unchanged.
        """
        for i, s in enumerate(strings):
            if not isinstance(s, str) or not s:
                raise ValueError(f"stop string {i} must be a non-empty string, got {s!r}")
        vocab = len(token_texts) if vocab_size is None else int(vocab_size)
        if not strings:
            return cls.empty(vocab)
        states, step = _automaton([list(s) for s in strings])
        n = len(states)
        table = np.tile(np.arange(n, dtype=np.int32)[:, None], (1, vocab))  # empty text: stay
        alphabet = {c for s in strings for c in s}
        # Per char, the states whose step differs from state 0's: only those need their own walk.
        special = {c: [s for s in range(1, n) if step(s, c) != step(0, c)] for c in alphabet}
        for t, text in enumerate(token_texts[:vocab]):
            if not text:
                continue
            # the walk from state 0; another start state joins it once both are in the same state
            walk, end0 = [], 0
            for c in text:
                end0 = step(end0, c) if c in alphabet else 0
                walk.append(end0)
                if end0 < 0:
                    break
            table[:, t] = end0
            for s0 in special.get(text[0], ()):
                s, res = s0, None
                for k, c in enumerate(text):
                    s = step(s, c) if c in alphabet else 0
                    if s < 0:
                        res = s
                        break
                    if k < len(walk) and s == walk[k]:
                        res = end0
                        break
                table[s0, t] = s if res is None else res
        return cls(table, len(strings))

    @classmethod
    def for_tokenizer(cls, strings: Sequence[str], tokenizer: TokenizerLike, vocab_size: int) -> StopTable:
        """Stop strings matched on the decoded text of `tokenizer`'s tokens, over a model vocabulary."""
        return cls.from_strings(strings, token_texts(tokenizer, vocab_size), vocab_size)

    def scan(self, ids: Sequence[int]) -> tuple[int, int]:
        """(position of the token that completes a stop, stop index), or (-1, -1): the reference
        for what the engine's loop does with the same table."""
        s = 0
        for k, t in enumerate(ids):
            s = int(self.table[s, int(t)])
            if s < 0:
                return k, -s - 1
        return -1, -1


def token_texts(tokenizer: TokenizerLike, vocab_size: int) -> list[str]:
    """The decoded text of every id below min(vocab_size, tokenizer's vocabulary), in context.

    Each token is decoded after a fixed one-token prefix and the prefix's text removed, so decoders
    that drop a leading space on the first token (SentencePiece) give the text it adds mid-sequence.
    """
    n = min(int(vocab_size), int(tokenizer.vocab_size))
    decode = tokenizer.decode
    prefix = list(tokenizer.encode("a"))
    if len(prefix) != 1:  # no one-token prefix to decode after: each id on its own
        return tokenizer.decode_batch([[i] for i in range(n)])
    lead = decode(prefix)
    pairs = tokenizer.decode_batch([prefix + [i] for i in range(n)])
    return [p[len(lead):] if p.startswith(lead) else decode([i]) for i, p in enumerate(pairs)]
