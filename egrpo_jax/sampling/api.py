"""The contract between the sampling engine and its users (agent loop, generate, eval).

The agent loop only talks to a `RolloutEngine`; tests drive it with a scripted engine that
implements the same protocol, the real one is `egrpo_jax.sampling.engine.Engine`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol


# Why a row stopped decoding in a segment.
STOP = "stop"  # emitted one of the stop sequences (included in the segment's tokens)
EOS = "eos"  # emitted an EOS id (included)
BUDGET = "budget"  # reached this segment's max_new_tokens
LENGTH = "length"  # the row's cache is full
STOP_REASONS = (STOP, EOS, BUDGET, LENGTH)


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k filter

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"sampling.temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"sampling.top_k must be >= 0, got {self.top_k}")


@dataclasses.dataclass
class Segment:
    """What one row produced in one decode segment."""

    tokens: list[int]  # new token ids, including the stop sequence / EOS that ended it
    logprobs: list[float]  # log-prob of each token under the distribution actually sampled from
    raw_logprobs: list[float]  # the model's log-softmax at temperature 1 (what the learner recomputes)
    stop_reason: str  # one of STOP_REASONS
    stop_index: int = -1  # index into the engine's stop sequences when stop_reason == STOP


class RolloutEngine(Protocol):
    """`num_rows` rows over one persistent KV cache; rollouts come and go row by row.

    A row is free, paused (holds a sequence, waits for the host) or decoding one segment. The agent
    loop inserts a rollout into a free row, begins a segment, decodes in blocks, appends tool
    responses to paused rows and frees rows whose rollout ended.
    """

    num_rows: int
    max_len: int  # cache slots per row (prompt + everything appended)

    def reset(self, *, seed: int = 0, params=None) -> None:
        """Every row free; the model's current parameters (or `params`, a snapshot of them) are the ones
        sampled from until the next reset."""

    def insert(self, rows: Sequence[int], prompts: Sequence[Sequence[int]], *, stream_ids: Sequence[int]) -> None:
        """Prefill free rows with prompts (ragged lengths); row i samples from (seed, stream_ids[i], position)."""

    def begin(self, rows: Sequence[int], max_new_tokens: Sequence[int]) -> None:
        """Paused rows start a segment of at most max_new_tokens[i] tokens."""

    def decode(self, max_steps: int = 0) -> dict[int, Segment]:
        """Decode every decoding row for up to max_steps steps (0: until each segment ends); the
        Segments of the rows whose segment ended (a stop sequence, EOS, its budget or the cache end)."""

    def extend(self, rows: Sequence[int], tokens: Sequence[Sequence[int]]) -> None:
        """Append host-written tokens (e.g. a tool response) to paused rows' caches."""

    def mark_done(self, rows: Sequence[int]) -> None:
        """Free these rows (their rollout ended)."""
