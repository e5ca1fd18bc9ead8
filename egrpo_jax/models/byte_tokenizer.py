"""A byte-level tokenizer: id = byte + 1, id 0 is EOS (`model.tokenizer = "byte"`, tiny smoke runs).

It has no files of its own; `save(dir)` writes a one-line marker (MARKER_FILE) so that a training
checkpoint folder names its tokenizer like any other. transformers cannot read that marker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from egrpo_jax.tokenizer_api import PlainTokenizer

MARKER_FILE = "byte_tokenizer.json"


class ByteTokenizer(PlainTokenizer):
    """id = byte + 1; id 0 is EOS (and padding). No chat template (the agent uses its plain prompt layout)."""

    eos_ids = (0,)
    eos_id = 0
    pad_id = 0
    vocab_size = 257

    def encode(self, text: str) -> list[int]:
        return [b + 1 for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) - 1 for i in ids if int(i) > 0).decode("utf-8", errors="replace")

    def save(self, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, MARKER_FILE), "w", encoding="utf-8") as f:
            json.dump({"tokenizer": "byte", "vocab_size": self.vocab_size}, f)

    @staticmethod
    def is_saved_in(path: str) -> bool:
        return os.path.isfile(os.path.join(path, MARKER_FILE))

    @classmethod
    def load(cls, path: str) -> ByteTokenizer:
        return cls()
