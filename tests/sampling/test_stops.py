"""Stops that do not depend on how BPE merges: the text automaton vs. real SmolLM2 merges and the engine."""

import random

import pytest

from egrpo_jax.agent.template import STOP_STRINGS, stop_token_sequences
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.sampling.api import BUDGET, STOP, SamplingParams
from egrpo_jax.sampling.engine import Engine
from egrpo_jax.sampling.stops import StopTable

# Model text where SmolLM2's BPE merges a tag with the text around it (' </', '>.', '>)', '>,').
MERGED = [
    '<tool_call>{"name": "search", "arguments": {"query": ["x"]}} </tool_call>',
    '<tool_call>{"name": "search", "arguments": {"query": ["x"]}}</tool_call>.',
    '<tool_call>{"name": "search", "arguments": {"query": ["x"]}}</tool_call>)',
    "<think>ok</think><answer>Paris</answer>.\n",
    "<answer>Paris</answer>,",
]


def _text_reference(tok, ids):
    """(first k whose decoded prefix ids[:k+1] holds a stop string, which) - brute force."""
    for k in range(len(ids)):
        text = tok.decode(ids[: k + 1])
        found = [(text.find(s), i) for i, s in enumerate(STOP_STRINGS) if s in text]
        if found:
            return k, min(found)[1]
    return -1, -1


def _id_window_match(ids, seqs):
    for k in range(len(ids)):
        for i, s in enumerate(seqs):
            if ids[max(0, k + 1 - len(s)): k + 1] == s:
                return k, i
    return -1, -1


def test_smollm2_merged_tags_stop_where_the_text_completes(smollm2_tokenizer):
    tok = smollm2_tokenizer
    table = StopTable.for_tokenizer(STOP_STRINGS, tok, tok.vocab_size)
    missed_by_ids = 0
    for text in MERGED:
        ids = tok.encode(text)
        want = _text_reference(tok, ids)
        assert want[0] >= 0
        assert table.scan(ids) == want, text
        missed_by_ids += _id_window_match(ids, stop_token_sequences(tok)) == (-1, -1)
    assert missed_by_ids == len(MERGED)  # the merges are real: exact id matching never fires


def test_smollm2_random_texts_agree_with_decoding(smollm2_tokenizer):
    tok = smollm2_tokenizer
    table = StopTable.for_tokenizer(STOP_STRINGS, tok, tok.vocab_size)
    rng = random.Random(0)
    pieces = ['"]}}', "</", "tool", "_", "call", ">", ">.", "\n", "answer", "x", "</tool_call>", "<", "/", " ", ")"]
    hits = 0
    for _ in range(300):
        ids = tok.encode("".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))))
        want = _text_reference(tok, ids)
        assert table.scan(ids) == want, (ids, want)
        hits += want[0] >= 0
    assert hits > 30


def test_id_sequences_and_validation():
    t = StopTable.from_ids([[5, 6], [6, 7, 8]], vocab_size=10)
    assert t.scan([1, 5, 5, 6, 7]) == (3, 0)
    assert t.scan([6, 7, 8]) == (2, 1) and t.scan([6, 7, 9, 8]) == (-1, -1)
    with pytest.raises(ValueError, match="stop_sequences\\[0\\] is empty"):
        StopTable.from_ids([[]], 10)
    with pytest.raises(ValueError, match="outside"):
        StopTable.from_ids([[10]], 10)
    with pytest.raises(ValueError, match="non-empty string"):
        StopTable.from_strings([""], ["a"])


def test_engine_stops_on_text_split_and_merged_across_tokens():
    model = create_model(tiny_config("qwen2"), seed=0)
    prompts = [[1, 2, 3], [5], [7, 8, 9, 10], [200, 3]]
    base = Engine(model, num_rows=4, max_len=48, sampling=SamplingParams(temperature=0.0))
    base.start(prompts)
    free = [s.tokens for s in base.decode_segment(20)]
    # Three distinct ids one row emits in a row spell "</tc>" merged with text on both sides.
    row, k = next((r, k) for r in range(4) for k in range(2, 18) if len(set(free[r][k:k + 3])) == 3)
    texts = ["."] * model.cfg.vocab_size
    a, b, c = free[row][k:k + 3]
    texts[a], texts[b], texts[c] = 'x"}</', "t", "c>.."
    stops = StopTable.from_strings(["</tc>"], texts, model.cfg.vocab_size)
    eng = Engine(model, num_rows=4, max_len=48, sampling=SamplingParams(temperature=0.0), stops=stops)
    eng.start(prompts)
    segs = eng.decode_segment(20)
    for r in range(4):
        end = next((j for j in range(len(free[r])) if "</tc>" in "".join(texts[t] for t in free[r][: j + 1])), None)
        if end is None:
            assert segs[r].tokens == free[r] and segs[r].stop_reason == BUDGET
        else:
            assert segs[r].tokens == free[r][: end + 1]
            assert (segs[r].stop_reason, segs[r].stop_index) == (STOP, 0)
    assert segs[row].stop_reason == STOP and len(segs[row].tokens) <= k + 3
