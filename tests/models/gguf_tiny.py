"""Write tiny GGUF files the way llama.cpp's convert_hf_to_gguf.py does (names, Q/K permutation, quant)."""

from __future__ import annotations

import json

import gguf
import numpy as np

HF_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias", "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(hf_model, arch: str) -> dict[str, np.ndarray]:
    cfg = hf_model.config
    out = {}
    for name, t in hf_model.state_dict().items():
        a = t.detach().float().numpy()
        if name == "model.embed_tokens.weight":
            out["token_embd.weight"] = a
        elif name == "model.norm.weight":
            out["output_norm.weight"] = a
        elif name == "lm_head.weight":
            if not cfg.tie_word_embeddings:
                out["output.weight"] = a
        else:
            _, _, i, *rest = name.split(".")
            suffix = ".".join(rest)
            if arch == "llama" and suffix == "self_attn.q_proj.weight":
                a = llama_cpp_permute(a, cfg.num_attention_heads)
            if arch == "llama" and suffix == "self_attn.k_proj.weight":
                a = llama_cpp_permute(a, cfg.num_key_value_heads)
            out[f"blk.{i}.{HF_TO_GGUF[suffix]}"] = a
    return out


def write_gguf(path, hf_model, arch: str, *, tokenizer=None, quant=None, tensors=None, chat_template=None,
               drop=()):
    """`quant`: GGUF tensor name -> GGMLQuantizationType; `tensors` overrides / adds raw arrays."""
    cfg = hf_model.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    if tokenizer is not None:
        model = json.loads(tokenizer.to_str())["model"]
        vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
        specials = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list([t for t, _ in vocab])
        w.add_token_types([3 if t in specials else 1 for t, _ in vocab])
        w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in model["merges"]])
        w.add_eos_token_id(tokenizer.token_to_id("<|im_end|>"))
        w.add_bos_token_id(tokenizer.token_to_id("<|im_start|>"))
        if chat_template:
            w.add_chat_template(chat_template)
    arrays = gguf_tensors(hf_model, arch)
    arrays.update(tensors or {})
    for name, a in arrays.items():
        if name in drop:
            continue
        qt = (quant or {}).get(name)
        if qt is None:
            w.add_tensor(name, np.ascontiguousarray(a))
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return arrays
