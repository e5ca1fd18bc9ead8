"""GGUF import on tiny files written like llama.cpp's converter: names, Q/K permutation, quant types, tokenizer."""

import math

import gguf
import jax.numpy as jnp
import numpy as np
import pytest

from egrpo_jax.models import load_pretrained
from egrpo_jax.models.gguf_io import unpermute_rows
from egrpo_jax.models.hf_io import host_params

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
from gguf_tiny import llama_cpp_permute, write_gguf
from hf_tiny import hf_logits, make_hf_model
from tok_tiny import train_tiny_bpe

Q = gguf.GGMLQuantizationType
TOKENS = np.array([[5, 17, 33, 2, 90, 41, 7, 7, 60, 12, 3]], np.int32)
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" \
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(4 * 8 * 3, dtype=np.float32).reshape(32, 3)
    assert not np.array_equal(llama_cpp_permute(w, 4), w)
    np.testing.assert_array_equal(unpermute_rows(llama_cpp_permute(w, 4), 4), w)


def test_llama_gguf_matches_transformers_and_tokenizer(tmp_path):
    bpe = train_tiny_bpe()
    hf = make_hf_model("llama", vocab_size=bpe.get_vocab_size(),
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    path = tmp_path / "tiny-llama.gguf"
    write_gguf(path, hf, "llama", tokenizer=bpe, chat_template=TEMPLATE)
    loaded = load_pretrained(str(path))
    assert loaded.config.tie_embeddings and loaded.config.rope_scaling is None
    diff = np.abs(np.asarray(loaded.model(jnp.asarray(TOKENS))) - hf_logits(hf, TOKENS)).max()
    assert diff < 1e-4, diff

    tok = loaded.tokenizer
    for s in ["The capital of France is Paris.", "born in 1812 <answer>x</answer>", "  odd\tspacing\n\n", "ünïcödé ✓"]:
        assert tok.encode(s) == bpe.encode(s, add_special_tokens=False).ids
        assert tok.decode(tok.encode(s)) == s
    msgs = [{"role": "user", "content": "Where is Paris?"}]
    text = tok.apply_chat_template(msgs)
    assert text == "<|im_start|>user\nWhere is Paris?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(text)
    assert ids[0] == bpe.token_to_id("<|im_start|>") and bpe.token_to_id("<|im_end|>") in ids
    assert tok.eos_id == bpe.token_to_id("<|im_end|>")
    assert set(tok.eos_ids) == {bpe.token_to_id("<|im_end|>"), bpe.token_to_id("<|endoftext|>")}


def test_qwen2_gguf_params_equal_hf_folder(tmp_path):
    hf = make_hf_model("qwen2")
    hf.save_pretrained(tmp_path / "hf")
    write_gguf(tmp_path / "q.gguf", hf, "qwen2")
    a = host_params(load_pretrained(str(tmp_path / "q.gguf"), with_tokenizer=False).model)
    b = host_params(load_pretrained(str(tmp_path / "hf"), with_tokenizer=False).model)
    assert a.keys() == b.keys() and ("layers", 0, "attn", "bq") in a and ("lm_head",) in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))


def test_qwen3_gguf_quant_types_dequantised(tmp_path):
    hf = make_hf_model("qwen3")
    quant = {"blk.0.attn_q.weight": Q.Q8_0, "blk.0.attn_k.weight": Q.Q4_0, "blk.1.attn_q.weight": Q.Q4_1,
             "blk.0.attn_v.weight": Q.F16, "blk.1.ffn_up.weight": Q.Q5_0, "token_embd.weight": Q.Q8_0}
    arrays = write_gguf(tmp_path / "q3.gguf", hf, "qwen3", quant=quant)
    loaded = load_pretrained(str(tmp_path / "q3.gguf"), with_tokenizer=False)
    assert loaded.config.qk_norm and loaded.config.head_dim == 16
    p = host_params(loaded.model)

    def deq(name):
        return gguf.quants.dequantize(gguf.quants.quantize(arrays[name], quant[name]), quant[name])

    np.testing.assert_array_equal(p[("layers", 0, "attn", "wq")], deq("blk.0.attn_q.weight").T)
    np.testing.assert_array_equal(p[("layers", 0, "attn", "wk")], deq("blk.0.attn_k.weight").T)
    np.testing.assert_array_equal(p[("layers", 1, "attn", "wq")], deq("blk.1.attn_q.weight").T)
    np.testing.assert_array_equal(p[("layers", 0, "attn", "wv")], deq("blk.0.attn_v.weight").T)
    np.testing.assert_array_equal(p[("layers", 1, "mlp", "w_up")], deq("blk.1.ffn_up.weight").T)
    np.testing.assert_array_equal(p[("embed",)], deq("token_embd.weight"))
    np.testing.assert_array_equal(p[("layers", 1, "attn", "q_norm", "scale")], arrays["blk.1.attn_q_norm.weight"])
    # quantisation error is real but small: the loaded model still tracks transformers' logits
    diff = np.abs(np.asarray(loaded.model(jnp.asarray(TOKENS))) - hf_logits(hf, TOKENS)).max()
    assert 0 < diff < 0.5


def _llama3_factors(head_dim, theta, factor=8.0, low=1.0, high=4.0, old=8192):
    """convert_hf_to_gguf.py LlamaModel.generate_extra_tensors (rope_freqs.weight)."""
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim)
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < old / high:
            out.append(1.0)
        elif wl > old / low:
            out.append(factor)
        else:
            s = (old / wl - low) / (high - low)
            out.append(1 / ((1 - s) / factor + s))
    return np.asarray(out, np.float32)


def test_llama3_rope_freqs_recovered(tmp_path):
    hf = make_hf_model("llama", hidden_size=128, num_attention_heads=2, num_key_value_heads=1,
                       rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    write_gguf(tmp_path / "l3.gguf", hf, "llama", tensors={"rope_freqs.weight": _llama3_factors(64, 500000.0)})
    cfg = load_pretrained(str(tmp_path / "l3.gguf"), with_tokenizer=False).config
    assert cfg.rope_scaling == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    bad = _llama3_factors(64, 500000.0)
    bad[5] *= 1.5
    write_gguf(tmp_path / "bad.gguf", hf, "llama", tensors={"rope_freqs.weight": bad})
    with pytest.raises(ValueError, match=r"bad\.gguf: tensor rope_freqs\.weight"):
        load_pretrained(str(tmp_path / "bad.gguf"), with_tokenizer=False)
