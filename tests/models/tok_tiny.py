"""A small byte-level BPE trained in the test with `tokenizers` (like the project's demo tokenizer)."""

from __future__ import annotations

import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The capital of France is Paris. Paris is on the Seine.",
    "Who wrote the novel? The author was born in 1812 in Portsmouth.",
    "Search for the entity, then answer: <answer>Paris</answer>",
    "numbers 0 1 2 3 4 5 6 7 8 9 and more text about rivers, mountains and cities.",
] * 20


@functools.cache
def _trained(vocab_size: int) -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return tok.to_str()


def train_tiny_bpe(vocab_size: int = 320) -> Tokenizer:
    return Tokenizer.from_str(_trained(vocab_size))
