"""Test doubles for the agent loop: a scripted RolloutEngine and a tokenizer of whole actions.

ScriptedEngine behaves like the real engine on the protocol level (rows that take rollouts,
stop sequences, EOS, per-segment budgets, bounded decode blocks, cache length, extend, mark_done)
but its "model" replays a fixed token stream per rollout. Log-probs are a fixed function of (token, position) so tests can check them.
"""

from __future__ import annotations

from collections.abc import Sequence

from egrpo_jax.tokenizer_api import PlainTokenizer
from egrpo_jax.sampling.api import BUDGET, EOS, LENGTH, STOP, Segment


def fake_logprob(token: int, position: int) -> float:
    return -((token % 7) + 1) / 8.0 - position / 1024.0


class ScriptedEngine:
    """Rollout j (its stream id) replays `streams[j]` (its whole model output across turns) one token
    per decode step, in whichever of the `num_rows` rows (default: one per stream) it is inserted."""

    def __init__(
        self,
        streams: Sequence[Sequence[int]],
        *,
        max_len: int,
        stop_sequences: Sequence[Sequence[int]] = (),
        eos_ids: Sequence[int] = (),
        num_rows: int | None = None,
    ):
        self.streams = [list(s) for s in streams]
        self.num_rows = len(self.streams) if num_rows is None else int(num_rows)
        self.max_len = int(max_len)
        self.stop_sequences = [list(s) for s in stop_sequences]
        self.eos_ids = {int(e) for e in eos_ids}
        self.cache: list[list[int]] = [[] for _ in self.streams]  # per stream: every token it was fed
        self.pos = [0] * len(self.streams)  # next token of each stream
        self.slot: list[int | None] = [None] * self.num_rows  # stream held by each row
        self.seg: dict[int, tuple[int, list[int]]] = {}  # decoding rows: (budget, tokens so far)
        self.calls: list[tuple] = []  # (method, args) log for tests
        self.seed: int | None = None
        self.max_live = 0  # most rows decoding in one decode call

    def reset(self, *, seed: int = 0, params=None) -> None:
        self.seed = seed
        self.slot = [None] * self.num_rows
        self.seg = {}
        self.calls.append(("reset", seed))

    def insert(self, rows: Sequence[int], prompts: Sequence[Sequence[int]], *, stream_ids: Sequence[int]) -> None:
        self.calls.append(("insert", list(rows), list(stream_ids)))
        for r, p, j in zip(rows, prompts, stream_ids, strict=True):
            if self.slot[r] is not None:
                raise ValueError(f"insert: row {r} is in use")
            if not p or len(p) > self.max_len:
                raise ValueError(f"insert: prompt of stream {j} has {len(p)} tokens (max_len {self.max_len})")
            self.slot[r] = j
            self.cache[j] = list(p)

    def begin(self, rows: Sequence[int], max_new_tokens: Sequence[int]) -> None:
        self.calls.append(("begin", list(rows), list(max_new_tokens)))
        for r, b in zip(rows, max_new_tokens, strict=True):
            if self.slot[r] is None or r in self.seg:
                raise ValueError(f"begin: row {r} is free or already decoding")
            self.seg[r] = (int(b), [])

    def _next(self, r: int) -> Segment | None:
        """One decode step of row r; its Segment when the step ends it."""
        j = self.slot[r]
        budget, toks = self.seg[r]
        if len(self.cache[j]) >= self.max_len:
            return self._end(r, LENGTH, -1)
        if len(toks) >= budget:
            return self._end(r, BUDGET, -1)
        if self.pos[j] >= len(self.streams[j]):
            if not self.eos_ids:
                raise RuntimeError(f"scripted stream {j} ran out of tokens and has no EOS to emit")
            tok = min(self.eos_ids)
        else:
            tok = self.streams[j][self.pos[j]]
            self.pos[j] += 1
        toks.append(tok)
        self.cache[j].append(tok)
        if tok in self.eos_ids:
            return self._end(r, EOS, -1)
        hit = [i for i, s in enumerate(self.stop_sequences) if toks[-len(s):] == s]
        if hit:
            return self._end(r, STOP, hit[0])
        if len(toks) >= budget:
            return self._end(r, BUDGET, -1)
        if len(self.cache[j]) >= self.max_len:
            return self._end(r, LENGTH, -1)
        return None

    def _end(self, r: int, reason: str, idx: int) -> Segment:
        j = self.slot[r]
        _, toks = self.seg.pop(r)
        start = len(self.cache[j]) - len(toks)
        lps = [fake_logprob(t, start + k) for k, t in enumerate(toks)]
        return Segment(toks, lps, [x - 0.5 for x in lps], reason, idx)

    def decode(self, max_steps: int = 0) -> dict[int, Segment]:
        decoding = sorted(self.seg)
        self.max_live = max(self.max_live, len(self.seg))
        out: dict[int, Segment] = {}
        steps = 0
        while self.seg and (max_steps == 0 or steps < max_steps):
            for r in sorted(self.seg):
                seg = self._next(r)
                if seg is not None:
                    out[r] = seg
            steps += 1
        self.calls.append(("decode", decoding, sorted(out)))  # rows decoded, rows whose segment ended
        return out

    def extend(self, rows: Sequence[int], tokens: Sequence[Sequence[int]]) -> None:
        self.calls.append(("extend", list(rows)))
        for r, t in zip(rows, tokens, strict=True):
            j = self.slot[r]
            if j is None or r in self.seg:
                raise ValueError(f"extend: row {r} is free or decoding")
            if len(self.cache[j]) + len(t) > self.max_len:
                raise ValueError(f"extend: row {r} would exceed max_len {self.max_len}")
            self.cache[j].extend(int(x) for x in t)

    def mark_done(self, rows: Sequence[int]) -> None:
        self.calls.append(("mark_done", list(rows)))
        for r in rows:
            self.slot[r] = None
            self.seg.pop(r, None)


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
