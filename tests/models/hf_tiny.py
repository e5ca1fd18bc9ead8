"""Tiny random transformers checkpoints (llama / qwen2 / qwen3) for parity tests; never downloaded."""

from __future__ import annotations

import torch
import transformers

COMMON = {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5}

LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
CONFIGS = {
    "llama": lambda **kw: transformers.LlamaConfig(
        **{**COMMON, "tie_word_embeddings": True, "rope_parameters": LLAMA3_ROPE, **kw}),
    "qwen2": lambda **kw: transformers.Qwen2Config(
        **{**COMMON, "tie_word_embeddings": False, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6},
           **kw}),
    "qwen3": lambda **kw: transformers.Qwen3Config(**{**COMMON, "head_dim": 16, "tie_word_embeddings": False, **kw}),
}


def make_hf_model(family: str, seed: int = 0, **overrides):
    """A random model whose every parameter (biases, norms included) is non-trivial."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[family](**overrides), dtype=torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model


def hf_logits(model, tokens) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.as_tensor(tokens)).logits.float().numpy()
