"""Which reader a tokenizer spec needs: "byte", a byte-tokenizer folder, a .gguf file, or HF files."""

from __future__ import annotations

import os

from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.models.gguf_tokenizer import tokenizer_from_gguf
from egrpo_jax.models.tokenizer import Tokenizer
from egrpo_jax.tokenizer_api import TokenizerLike


def load_tokenizer(spec: str) -> TokenizerLike:
    """"byte" (ByteTokenizer), a folder ByteTokenizer.save wrote, a .gguf file (its embedded BPE), or an
    HF folder / tokenizer.json / sentencepiece .model (models.tokenizer.Tokenizer)."""
    if spec == "byte":
        return ByteTokenizer()
    if ByteTokenizer.is_saved_in(spec):
        return ByteTokenizer.load(spec)
    if spec.endswith(".gguf") and os.path.isfile(spec):
        return tokenizer_from_gguf(spec)
    return Tokenizer.from_pretrained(spec)
