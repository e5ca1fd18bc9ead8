"""LoRA in the decoder: fresh adapters leave the base's logits exactly as they were, adapters shard like
their weights, a model loaded from a file gets fresh adapters on the file's weights, the base hash,
and the merged HF export that transformers reads with our (unmerged) logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from egrpo_jax.mesh import make_mesh
from egrpo_jax.models import load_pretrained, save_pretrained
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.lora import BASE, base_sha256, has_adapters
from egrpo_jax.models.sharding import create_model, param_specs

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # 2 shared CPU cores: torch threads spinning against XLA's are ~10x slower
transformers = pytest.importorskip("transformers")

TOKENS = jnp.asarray(np.random.default_rng(0).integers(0, 96, (2, 11)), jnp.int32)


def _cfg(family="qwen2", **kw):
    return tiny_config(family, vocab_size=96, hidden_size=32, intermediate_size=48, num_heads=4, num_kv_heads=2,
                       head_dim=8, **kw)


def _flat(model, what):
    return {".".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, what))}


def _randomise_adapters(model, seed=0):
    """Non-zero b (fresh adapters are zero updates), so a test sees what the adapters add."""
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.LoRAParam)
    nnx.update(model, jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.3, x.shape), x.dtype), state))


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_fresh_adapters_reproduce_the_base_logits_exactly(family):
    base = create_model(_cfg(family), seed=1)
    lora = create_model(_cfg(family, lora_rank=4, lora_alpha=8.0), seed=1)
    assert not has_adapters(base) and has_adapters(lora)
    pb, pl = _flat(base, nnx.Param), _flat(lora, BASE)
    assert pb.keys() == pl.keys()  # the base weights are drawn first, the same with or without adapters
    for k in pb:
        np.testing.assert_array_equal(pl[k], pb[k], err_msg=k)
    adapters = _flat(lora, nnx.LoRAParam)
    assert len(adapters) == 2 * 7 * 2  # a and b of 7 projections in 2 layers
    assert all(np.all(v == 0) for k, v in adapters.items() if k.endswith(".b"))
    assert all(np.any(v != 0) for k, v in adapters.items() if k.endswith(".a"))
    np.testing.assert_array_equal(np.asarray(lora(TOKENS)), np.asarray(base(TOKENS)))
    _randomise_adapters(lora)
    assert np.abs(np.asarray(lora(TOKENS)) - np.asarray(base(TOKENS))).max() > 1e-2  # the adapters are used


def test_targets_shapes_and_sharding_follow_the_weight():
    cfg = _cfg(lora_rank=2, lora_targets=("q", "down"))
    mesh = make_mesh(1, 2, 4)
    model = create_model(cfg, mesh=mesh, seed=0)
    shapes = {k: v.shape for k, v in _flat(model, nnx.LoRAParam).items()}
    assert shapes == {"layers.0.attn.wq_lora.a": (32, 2), "layers.0.attn.wq_lora.b": (2, 32),
                      "layers.0.mlp.w_down_lora.a": (48, 2), "layers.0.mlp.w_down_lora.b": (2, 32),
                      "layers.1.attn.wq_lora.a": (32, 2), "layers.1.attn.wq_lora.b": (2, 32),
                      "layers.1.mlp.w_down_lora.a": (48, 2), "layers.1.mlp.w_down_lora.b": (2, 32)}
    specs = param_specs(model)
    # wq is (embed -> fsdp, heads -> tensor): a shards its input side like wq, b its output side
    assert tuple(specs["layers.0.attn.wq"]) == ("fsdp", "tensor")
    assert tuple(specs["layers.0.attn.wq_lora.a"]) == ("fsdp", None)
    assert tuple(specs["layers.0.attn.wq_lora.b"]) == (None, "tensor")
    assert tuple(specs["layers.0.mlp.w_down_lora.a"]) == ("tensor", None)
    assert tuple(specs["layers.0.mlp.w_down_lora.b"]) == (None, "fsdp")


def test_base_dtype_and_the_base_hash():
    plain, lora = create_model(_cfg(), seed=0), create_model(_cfg(lora_rank=2), seed=0)
    bf16 = create_model(_cfg(lora_rank=2, lora_base_dtype="bfloat16"), seed=0)
    assert {v.dtype for v in _flat(bf16, BASE).values()} == {jnp.dtype("bfloat16")}
    assert {v.dtype for v in _flat(bf16, nnx.LoRAParam).values()} == {jnp.dtype("float32")}  # param_dtype
    assert {v.dtype for v in _flat(lora, nnx.Param).values()} == {jnp.dtype("float32")}
    # the hash covers the base weights only, as held (a bfloat16 base is another base)
    h = base_sha256(lora)
    assert h == base_sha256(plain) and len(h) == 64
    _randomise_adapters(lora)
    assert base_sha256(lora) == h  # training the adapters leaves the base (and its hash) alone
    assert base_sha256(bf16) != h and base_sha256(create_model(_cfg(), seed=1)) != h


def test_loading_a_file_puts_fresh_adapters_on_its_weights(tmp_path):
    plain = create_model(_cfg(), seed=3)
    save_pretrained(plain, None, str(tmp_path / "base"))
    lora = _cfg(lora_rank=4).lora_settings()
    loaded = load_pretrained(str(tmp_path / "base"), with_tokenizer=False, lora=lora, seed=5)
    assert loaded.config.lora_rank == 4
    for k, v in _flat(plain, nnx.Param).items():
        np.testing.assert_array_equal(_flat(loaded.model, BASE)[k], v, err_msg=k)
    got = _flat(loaded.model, nnx.LoRAParam)
    assert got.keys() == _flat(create_model(_cfg(lora_rank=4), seed=5), nnx.LoRAParam).keys()
    assert all(np.all(v == 0) for k, v in got.items() if k.endswith(".b"))
    a = got["layers.0.mlp.w_down_lora.a"]
    assert a.shape == (48, 4) and 0.5 < a.std() * np.sqrt(48) < 2  # N(0, 1/in)
    np.testing.assert_array_equal(np.asarray(loaded.model(TOKENS)), np.asarray(plain(TOKENS)))
    other = load_pretrained(str(tmp_path / "base"), with_tokenizer=False, lora=lora, seed=6)
    assert not np.array_equal(_flat(other.model, nnx.LoRAParam)["layers.0.mlp.w_down_lora.a"], a)  # drawn from seed


@pytest.mark.parametrize("family,base_dtype", [("llama", "float32"), ("qwen2", "bfloat16")])
def test_merged_export_matches_our_logits_in_transformers(family, base_dtype, tmp_path):
    """save_pretrained of a model with adapters writes W + alpha / r * a @ b; transformers reads it
    back with the logits our decoder computes with the adapters unmerged."""
    model = create_model(_cfg(family, lora_rank=4, lora_alpha=6.0, lora_base_dtype=base_dtype), seed=2)
    _randomise_adapters(model, seed=1)
    ours = np.asarray(model(TOKENS))
    save_pretrained(model, None, str(tmp_path / "hf"))
    back = load_pretrained(str(tmp_path / "hf"), with_tokenizer=False)
    assert back.config.lora_rank == 0 and not has_adapters(back.model)
    # the merged weight, by hand, for one projection
    wq, a, b = (np.asarray(model.layers[0].attn.wq[...], np.float32), np.asarray(model.layers[0].attn.wq_lora.a[...]),
                np.asarray(model.layers[0].attn.wq_lora.b[...]))
    merged = np.asarray(back.model.layers[0].attn.wq[...])
    np.testing.assert_allclose(merged, wq + 6.0 / 4 * a @ b, rtol=1e-6, atol=1e-6)
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"), dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = ref(torch.tensor(np.asarray(TOKENS))).logits.numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    np.testing.assert_allclose(np.asarray(back.model(TOKENS)), ours, atol=1e-4)
