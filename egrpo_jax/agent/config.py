"""Agent-loop limits and prompt choice (validated on construction)."""

from __future__ import annotations

import dataclasses

from egrpo_jax.config import PROMPT_STYLES


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    group_size: int = 1  # G rollouts per question (rows = questions x G, question-major)
    max_tool_calls: int = 40  # a row asking for call number max_tool_calls + 1 is overlength (paper: 40)
    max_total_tokens: int = 4096  # prompt + model + host tokens per row (paper: 32k, configs/tpu_common.py); also capped by the cache
    # Most tokens the model may write in one turn; a row that hits it is overlength. It bounds how long
    # one runaway row holds up a decode segment. 0 = only the total budget applies.
    max_turn_tokens: int = 0
    # Decode steps between host visits (refilling free rows, appending tool responses). 0 = until every
    # decoding row ends its segment (lock-step turns); a bound lets a row that stopped early take its
    # tool response, or a new rollout its row, while the others are still writing.
    segment_steps: int = 0
    prompt_style: str = "full"  # "full" (tool schemas) or "short" (one paragraph, for tiny models)
    seed: int = 0  # sampling seed passed to engine.start

    def __post_init__(self) -> None:
        for key, lo in (("group_size", 1), ("max_tool_calls", 0), ("max_total_tokens", 2), ("max_turn_tokens", 0),
                        ("segment_steps", 0)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"agent.{key} must be an integer >= {lo}, got {v!r}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"agent.prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")
