"""`generate`: strings or token ids in, token ids + text + log-probs out."""

import numpy as np
import pytest

from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.sampling import generate
from egrpo_jax.sampling.api import BUDGET, STOP
from egrpo_jax.tokenizer_api import PlainTokenizer


class ByteTokenizer(PlainTokenizer):
    """Minimal stand-in: one token per byte, EOS = 0."""

    eos_ids = (0,)
    pad_id = 0
    vocab_size = 256

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(ids).decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def model():
    return create_model(tiny_config("qwen2"), seed=0)


def test_generate_str_and_ids_agree(model):
    tok = ByteTokenizer()
    prompts = ["hello", list(b"hello"), "a much longer prompt"]
    out = generate(model, tok, prompts, max_new_tokens=8)
    assert out[0].tokens == out[1].tokens
    assert out[0].logprobs == out[1].logprobs
    for g in out:
        assert g.text == tok.decode(g.tokens)
        assert len(g.tokens) <= 8 and g.stop_reason in (BUDGET, "eos")
        assert g.logprobs == [0.0] * len(g.tokens)  # greedy
        assert all(lp <= 0 for lp in g.raw_logprobs)


def test_generate_string_stop_and_seed(model):
    tok = ByteTokenizer()
    free = generate(model, tok, ["xyz"], max_new_tokens=12, temperature=1.0, seed=4)[0]
    again = generate(model, tok, ["xyz"], max_new_tokens=12, temperature=1.0, seed=4)[0]
    assert free.tokens == again.tokens
    np.testing.assert_allclose(free.logprobs, free.raw_logprobs, atol=1e-5)  # T=1, no filter
    stop = bytes(free.tokens[3:5]).decode("latin-1")
    if free.stop_reason == BUDGET and stop.encode() == bytes(free.tokens[3:5]):
        cut = generate(model, tok, ["xyz"], max_new_tokens=12, temperature=1.0, seed=4, stop=[stop])[0]
        assert cut.stop_reason == STOP
        end = next(i for i in range(1, 12) if free.tokens[i - 1: i + 1] == free.tokens[3:5])
        assert cut.tokens == free.tokens[: end + 1]


def test_generate_rejects_single_string(model):
    with pytest.raises(TypeError, match="list of prompts"):
        generate(model, ByteTokenizer(), "hello", max_new_tokens=2)
