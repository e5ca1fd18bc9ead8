"""Our decoder vs transformers on tiny random Llama (llama3 RoPE, tied), Qwen2 (biases), Qwen3 (q/k norm)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from egrpo_jax.models import load_pretrained, save_pretrained
from egrpo_jax.models.hf_io import host_params

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # 2 shared CPU cores: torch threads spinning against XLA's are ~10x slower
transformers = pytest.importorskip("transformers")
from hf_tiny import hf_logits, make_hf_model

TOKENS = np.array([[5, 17, 33, 2, 90, 41, 7, 7, 60, 12, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]], np.int32)


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_logits_match_transformers(family, tmp_path):
    hf = make_hf_model(family)
    # qwen3 is written as a sharded checkpoint (index + several files) to cover that path
    hf.save_pretrained(tmp_path, max_shard_size="20KB" if family == "qwen3" else "5GB")
    if family == "qwen3":
        assert (tmp_path / "model.safetensors.index.json").exists()
    ref = hf_logits(hf, TOKENS)
    loaded = load_pretrained(str(tmp_path), with_tokenizer=False)
    assert loaded.config.family == family
    ours = np.asarray(loaded.model(jnp.asarray(TOKENS)))
    diff = np.abs(ours - ref).max()
    print(f"{family}: max abs logit diff {diff:.2e}")
    assert diff < 1e-4


def test_llama3_scaling_and_tying_are_read(tmp_path):
    make_hf_model("llama").save_pretrained(tmp_path)
    cfg = load_pretrained(str(tmp_path), with_tokenizer=False).config
    assert cfg.tie_embeddings and cfg.rope_theta == 50000.0
    assert cfg.rope_scaling == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}


def test_old_style_config_keys(tmp_path):
    """transformers-4 style rope_theta / rope_scaling / torch_dtype keys are accepted too."""
    make_hf_model("llama").save_pretrained(tmp_path)
    d = json.loads((tmp_path / "config.json").read_text())
    rope = d.pop("rope_parameters")
    d["rope_theta"] = rope.pop("rope_theta")
    d["rope_scaling"] = {"type": rope.pop("rope_type"), **rope}
    d["torch_dtype"] = d.pop("dtype", "float32")
    (tmp_path / "config.json").write_text(json.dumps(d))
    cfg = load_pretrained(str(tmp_path), with_tokenizer=False).config
    assert cfg.rope_theta == 50000.0 and cfg.rope_scaling["factor"] == 8.0


def test_bf16_checkpoint_loads_exact_values(tmp_path):
    hf = make_hf_model("qwen2").to(torch.bfloat16)
    hf.save_pretrained(tmp_path)
    loaded = load_pretrained(str(tmp_path), with_tokenizer=False)
    ours = host_params(loaded.model)
    want = hf.model.layers[1].self_attn.q_proj.weight.detach().float().numpy().T
    np.testing.assert_array_equal(ours[("layers", 1, "attn", "wq")], want)
    np.testing.assert_array_equal(ours[("layers", 0, "attn", "bk")], hf.model.layers[0].self_attn.k_proj.bias.detach().float().numpy())


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_export_round_trip_and_transformers_loads_it(family, tmp_path):
    hf = make_hf_model(family, seed=1)
    hf.save_pretrained(tmp_path / "src")
    a = load_pretrained(str(tmp_path / "src"), with_tokenizer=False)
    save_pretrained(a, None, str(tmp_path / "out"))
    b = load_pretrained(str(tmp_path / "out"), with_tokenizer=False)
    assert a.config == b.config
    pa, pb = host_params(a.model), host_params(b.model)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=str(k))
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32).eval()
    np.testing.assert_array_equal(hf_logits(back, TOKENS), hf_logits(hf, TOKENS))


def test_long_sequence_attention_blocks_match_transformers(tmp_path):
    """192 tokens: the no-cache attention runs in three 64-token query blocks (causal_attention)."""
    hf = make_hf_model("qwen2")
    hf.save_pretrained(tmp_path)
    tokens = np.random.default_rng(3).integers(0, 96, (2, 192)).astype(np.int32)
    loaded = load_pretrained(str(tmp_path), with_tokenizer=False)
    ours = np.asarray(loaded.model(jnp.asarray(tokens)))
    assert np.abs(ours - hf_logits(hf, tokens)).max() < 1e-4
