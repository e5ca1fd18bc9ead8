"""The tokenizer protocol the stack relies on, and a base class for tokenizers without control tokens.

Everything that turns text into ids (agent prompts and tool responses, SFT demos, stop tables, the
visit tool's page budget) calls these members directly; nothing probes a tokenizer for optional
methods. The project's tokenizers implement it: models.tokenizer.Tokenizer (HF tokenizer.json,
sentencepiece, GGUF), models.byte_tokenizer.ByteTokenizer, and the test doubles.

`encode` is for text the host writes itself (prompt template, tags): special-token text maps to its
id. `encode_text` is for data (questions, tool output, documents): it never yields an id of
`control_tokens()`. Neither adds BOS/EOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class TokenizerLike(Protocol):
    vocab_size: int
    eos_ids: tuple[int, ...]  # every id that ends a turn (may be empty: rows then end on stops / budgets)
    pad_id: int  # fills positions that are masked everywhere (attention, loss)
    chat_template: str | None  # None: the agent uses its plain "System/User/Assistant" layout

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def encode_text(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]: ...

    def control_tokens(self) -> dict[str, int]: ...

    def apply_chat_template(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str: ...


class PlainTokenizer:
    """Base for tokenizers with no control tokens and no chat template (byte-level, test doubles).

    A subclass defines encode, decode, vocab_size, eos_ids and pad_id; data then encodes like any
    other text, and the batch methods are loops.
    """

    chat_template: str | None = None

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]  # type: ignore[attr-defined]

    def encode_text(self, text: str) -> list[int]:
        return self.encode(text)  # type: ignore[attr-defined]

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]  # type: ignore[attr-defined]

    def control_tokens(self) -> dict[str, int]:
        return {}

    def apply_chat_template(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        raise ValueError(f"{type(self).__name__} has no chat template (chat_template is None): give the "
                         "prompt as plain text")
