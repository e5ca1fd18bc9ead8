"""A byte-level tokenizer: id = byte + 1, id 0 is EOS (`model.tokenizer = "byte"`, tiny smoke runs)."""

from __future__ import annotations

from collections.abc import Sequence


class ByteTokenizer:
    """id = byte + 1; id 0 is EOS. No chat template (the agent uses its plain prompt layout)."""

    eos_ids = (0,)
    eos_id = 0
    vocab_size = 257

    def encode(self, text: str) -> list[int]:
        return [b + 1 for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) - 1 for i in ids if int(i) > 0).decode("utf-8", errors="replace")
