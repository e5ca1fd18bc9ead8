"""Train a small byte-level BPE tokenizer on a corpus (for policies trained from scratch).

The agent's tags and the chat markers are atomic special tokens, so stop sequences are single
ids and a tag never merges with the text around it.
"""

from __future__ import annotations

from collections.abc import Iterable

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from egrpo_jax.agent import template
from egrpo_jax.models.tokenizer import Tokenizer

CHAT_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TAG_TOKENS = (
    template.THINK_OPEN, template.THINK_CLOSE, template.CALL_OPEN, template.CALL_CLOSE,
    template.RESP_OPEN, template.RESP_CLOSE, template.ANSWER_OPEN, template.ANSWER_CLOSE,
)


def train_bpe(texts: Iterable[str], vocab_size: int = 1024) -> Tokenizer:
    """A byte-level BPE with ChatML markers and the agent tags as special tokens."""
    if vocab_size < 300:
        raise ValueError(f"tokenizer vocab_size must be >= 300 (256 bytes + specials), got {vocab_size}")
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(CHAT_TOKENS + TAG_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return Tokenizer.from_tokenizers(tok, eos="<|im_end|>", pad="<|endoftext|>", extra_eos=["<|endoftext|>"],
                                     chat_template=None)
