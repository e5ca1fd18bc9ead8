"""Test doubles for the agent loop: a scripted RolloutEngine and a tokenizer of whole actions.

ScriptedEngine behaves like the real engine on the protocol level (stop sequences, EOS,
per-row budgets, cache length, extend, mark_done) but its "model" replays a fixed token
stream per row. Log-probs are a fixed function of (token, position) so tests can check them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from egrpo_jax.tokenizer_api import PlainTokenizer
from egrpo_jax.sampling.api import BUDGET, EOS, LENGTH, STOP, Segment


def fake_logprob(token: int, position: int) -> float:
    return -((token % 7) + 1) / 8.0 - position / 1024.0


class ScriptedEngine:
    """Row r replays `streams[r]` (its whole model output across turns) one token at a time."""

    def __init__(
        self,
        streams: Sequence[Sequence[int]],
        *,
        max_len: int,
        stop_sequences: Sequence[Sequence[int]] = (),
        eos_ids: Sequence[int] = (),
    ):
        self.streams = [list(s) for s in streams]
        self.num_rows = len(self.streams)
        self.max_len = int(max_len)
        self.stop_sequences = [list(s) for s in stop_sequences]
        self.eos_ids = {int(e) for e in eos_ids}
        self.cache: list[list[int]] = [[] for _ in self.streams]
        self.pos = [0] * self.num_rows
        self.live = [False] * self.num_rows
        self.calls: list[tuple] = []  # (method, args) log for tests
        self.seed: int | None = None

    def start(self, prompts: Sequence[Sequence[int]], *, seed: int = 0) -> None:
        if not 1 <= len(prompts) <= self.num_rows:
            raise ValueError(f"start: {len(prompts)} prompts for {self.num_rows} rows")
        self.seed = seed
        for r, p in enumerate(prompts):
            if not p or len(p) > self.max_len:
                raise ValueError(f"start: prompt {r} has {len(p)} tokens (max_len {self.max_len})")
            self.cache[r] = list(p)
            self.pos[r] = 0
            self.live[r] = True
        self.calls.append(("start", len(prompts)))

    def _step(self, r: int, budget: int) -> Segment:
        toks: list[int] = []
        while True:
            if len(self.cache[r]) >= self.max_len:
                reason, idx = LENGTH, -1
                break
            if len(toks) >= budget:
                reason, idx = BUDGET, -1
                break
            if self.pos[r] >= len(self.streams[r]):
                if not self.eos_ids:
                    raise RuntimeError(f"scripted row {r} ran out of tokens and has no EOS to emit")
                tok = min(self.eos_ids)
            else:
                tok = self.streams[r][self.pos[r]]
                self.pos[r] += 1
            toks.append(tok)
            self.cache[r].append(tok)
            if tok in self.eos_ids:
                reason, idx = EOS, -1
                break
            hit = [i for i, s in enumerate(self.stop_sequences) if toks[-len(s):] == s]
            if hit:
                reason, idx = STOP, hit[0]
                break
        start = len(self.cache[r]) - len(toks)
        lps = [fake_logprob(t, start + k) for k, t in enumerate(toks)]
        return Segment(toks, lps, [x - 0.5 for x in lps], reason, idx)

    def decode_segment(self, max_new_tokens: int | Sequence[int]) -> list[Segment | None]:
        if isinstance(max_new_tokens, int):
            budgets = [max_new_tokens] * self.num_rows
        else:
            budgets = [int(b) for b in max_new_tokens]
            if len(budgets) != self.num_rows:
                raise ValueError(f"decode_segment: {len(budgets)} budgets for {self.num_rows} rows")
        self.calls.append(("decode_segment", list(budgets)))
        return [self._step(r, budgets[r]) if self.live[r] else None for r in range(self.num_rows)]

    def extend(self, rows: Sequence[int], tokens: Sequence[Sequence[int]]) -> None:
        self.calls.append(("extend", list(rows)))
        for r, t in zip(rows, tokens, strict=True):
            if not self.live[r]:
                raise ValueError(f"extend: row {r} is done")
            if len(self.cache[r]) + len(t) > self.max_len:
                raise ValueError(f"extend: row {r} would exceed max_len {self.max_len}")
            self.cache[r].extend(int(x) for x in t)

    def mark_done(self, rows: Sequence[int]) -> None:
        self.calls.append(("mark_done", list(rows)))
        for r in rows:
            self.live[r] = False

    def lengths(self) -> np.ndarray:
        return np.array([len(c) for c in self.cache], np.int32)


# Whole well-formed actions as single tokens: lets a tiny random model (head biased toward ids 1 and
# 2) write valid multi-turn rollouts, so real tool calls and engine.extend run in tests.
ACTION_CALL_TEXT = '<think>look it up</think><tool_call>{"name": "search", "arguments": {"query": ["Paris"]}}</tool_call>'
ACTION_ANSWER_TEXT = "<think>found it</think><answer>Paris</answer>"
ACTION_CALL, ACTION_ANSWER = 1, 2


class ActionTokenizer(PlainTokenizer):
    """0 = EOS (and padding), 1 = a whole search call, 2 = a whole answer, 3 + b = byte b."""

    eos_ids = (0,)
    pad_id = 0
    vocab_size = 259
    _actions = ((ACTION_CALL, ACTION_CALL_TEXT), (ACTION_ANSWER, ACTION_ANSWER_TEXT))

    def encode(self, text: str) -> list[int]:
        out, i = [], 0
        while i < len(text):
            for tid, s in self._actions:
                if text.startswith(s, i):
                    out.append(tid)
                    i += len(s)
                    break
            else:
                out.extend(b + 3 for b in text[i].encode())
                i += 1
        return out

    def encode_text(self, text: str) -> list[int]:
        """Bytes only: action text inside data stays text (see agent.host_text)."""
        return [b + 3 for b in text.encode()]

    def control_tokens(self) -> dict[str, int]:
        return {s: tid for tid, s in self._actions}

    def decode(self, ids) -> str:
        parts, buf = [], bytearray()
        for t in ids:
            if t >= 3:
                buf.append(t - 3)
                continue
            parts.append(buf.decode(errors="replace"))
            buf = bytearray()
            parts.append(dict(self._actions).get(t, ""))
        return "".join(parts) + buf.decode(errors="replace")
