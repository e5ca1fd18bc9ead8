"""The contract between the sampling engine and its users (agent loop, generate, eval).

The agent loop only talks to a `RolloutEngine`; tests drive it with a scripted engine that
implements the same protocol, the real one is `egrpo_jax.sampling.engine.Engine`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

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
    """A batch of independent rows over one persistent KV cache."""

    max_len: int  # cache slots per row (prompt + everything appended)

    def start(self, prompts: Sequence[Sequence[int]], *, seed: int = 0) -> None:
        """Prefill each row with its prompt (ragged lengths); all rows become live."""

    def decode_segment(self, max_new_tokens: int | Sequence[int]) -> list[Segment | None]:
        """Decode every live row until a stop sequence, EOS, its budget or the cache end.

        Returns one entry per row: a Segment for rows that were live, None for done rows.
        """

    def extend(self, rows: Sequence[int], tokens: Sequence[Sequence[int]]) -> None:
        """Append host-written tokens (e.g. a tool response) to the given rows' caches."""

    def mark_done(self, rows: Sequence[int]) -> None:
        """Rows that stop taking part in later segments."""

    def lengths(self) -> np.ndarray:
        """Tokens currently held in each row's cache, int [rows]."""
