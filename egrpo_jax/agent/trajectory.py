"""One rollout, exactly as sampled: the learner trains on these token ids, never re-tokenised text."""

from __future__ import annotations

import dataclasses
from typing import Any

# Terminal status of a rollout.
ANSWERED = "answered"  # produced <answer>...</answer> in the right format
FORMAT_ERROR = "format_error"  # deviated from the ReAct format (see format_error for the kind)
OVERLENGTH = "overlength"  # ran out of context or tool-call budget
STATUSES = (ANSWERED, FORMAT_ERROR, OVERLENGTH)


@dataclasses.dataclass
class ToolCallRecord:
    name: str  # "search" | "visit"
    arguments: dict[str, Any]
    response: str  # the text placed inside <tool_response>...</tool_response>
    ok: bool  # False when the tool failed after retries (the error text is the response)
    latency_s: float


@dataclasses.dataclass
class Trajectory:
    question_id: str
    tokens: list[int]  # prompt + model + host tokens, in order
    loss_mask: list[int]  # 1 exactly on model-written tokens
    logprobs: list[float]  # sampler log-probs on model tokens, 0.0 elsewhere
    prompt_len: int
    thoughts: list[str]  # text inside every <think>...</think> block, in order
    tool_calls: list[ToolCallRecord]
    answer: str | None  # text inside <answer>...</answer>, None if absent
    status: str  # one of STATUSES
    format_error: str | None = None  # kind of format error, when status == FORMAT_ERROR
    raw_logprobs: list[float] = dataclasses.field(default_factory=list)  # temperature-1 log-probs
    text: str = ""  # decoded model+host text after the prompt, for humans and logs only
    sample_index: int = 0  # which of the question's G rollouts this is
    detail: str = ""  # why it ended: the format error's reason or the limit that was hit
    num_turns: int = 0  # model segments decoded
    # per thought: the tool responses received before it (grounded entity credit; None: not recorded)
    responses_before: list[int] | None = None

    def __post_init__(self) -> None:
        n = len(self.tokens)
        if len(self.loss_mask) != n or len(self.logprobs) != n:
            raise ValueError(
                f"trajectory {self.question_id}: tokens ({n}), loss_mask ({len(self.loss_mask)}) and "
                f"logprobs ({len(self.logprobs)}) must have equal length"
            )
        if self.responses_before is not None and len(self.responses_before) != len(self.thoughts):
            raise ValueError(f"trajectory {self.question_id}: {len(self.thoughts)} thoughts but "
                             f"{len(self.responses_before)} responses_before counts")
        if self.status not in STATUSES:
            raise ValueError(f"trajectory status must be one of {STATUSES}, got {self.status!r}")

    @property
    def num_tool_calls(self) -> int:
        return len(self.tool_calls)

    @property
    def num_model_tokens(self) -> int:
        return int(sum(self.loss_mask))

    @property
    def num_host_tokens(self) -> int:
        """Tokens written by the host after the prompt (tool responses)."""
        return len(self.tokens) - self.prompt_len - self.num_model_tokens

    @property
    def is_error(self) -> bool:
        return self.status != ANSWERED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for rollout dumps and SFT demos)."""
        return dataclasses.asdict(self)
