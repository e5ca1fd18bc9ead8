"""Bad input gives a one-line error naming the file and the tensor / key."""

import json

import numpy as np
import pytest

from egrpo_jax.models import load_pretrained
from egrpo_jax.models.safetensors_io import SafetensorsFile, save_file

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
from gguf_tiny import write_gguf
from hf_tiny import make_hf_model


def _raises(exc, pattern, path):
    with pytest.raises(exc, match=pattern) as info:
        load_pretrained(str(path), with_tokenizer=False)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf")
    make_hf_model("qwen2").save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def hf_model():
    return make_hf_model("qwen3")


def _copy(hf_dir, tmp_path):
    for f in hf_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    return tmp_path


def test_missing_path(tmp_path):
    _raises(FileNotFoundError, r"nope\.gguf: file not found", tmp_path / "nope.gguf")


def test_missing_config_and_weights(hf_dir, tmp_path):
    d = _copy(hf_dir, tmp_path)
    (d / "config.json").unlink()
    _raises(FileNotFoundError, r"config\.json: file not found", d)
    (tmp_path / "x").mkdir()
    d2 = _copy(hf_dir, tmp_path / "x")
    (d2 / "model.safetensors").unlink()
    _raises(FileNotFoundError, r"model\.safetensors: file not found", d2)


def test_unknown_architecture(hf_dir, tmp_path, hf_model):
    d = _copy(hf_dir, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (d / "config.json").write_text(json.dumps(cfg))
    _raises(ValueError, r"config\.json: key model_type = 'gpt2' is not supported", d)
    write_gguf(tmp_path / "m.gguf", hf_model, "qwen3")
    # same file, architecture renamed: patch the metadata string in place (same length)
    raw = (tmp_path / "m.gguf").read_bytes().replace(b"qwen3", b"mamba", 1)
    (tmp_path / "b.gguf").write_bytes(raw)
    _raises(ValueError, r"b\.gguf: key general\.architecture = 'mamba' is not supported", tmp_path / "b.gguf")


def test_wrong_tensor_shape_hf(hf_dir, tmp_path):
    d = _copy(hf_dir, tmp_path)
    st = SafetensorsFile(str(d / "model.safetensors"))
    tensors = {n: np.array(st.get(n)) for n in st.names()}
    tensors["model.layers.1.mlp.up_proj.weight"] = tensors["model.layers.1.mlp.up_proj.weight"][:, :-1].copy()
    del tensors["model.layers.0.self_attn.k_proj.bias"]
    save_file(tensors, str(d / "model.safetensors"))
    _raises(ValueError, r"missing tensor model\.layers\.0\.self_attn\.k_proj\.bias", d)
    tensors["model.layers.0.self_attn.k_proj.bias"] = np.zeros(16, np.float32)
    save_file(tensors, str(d / "model.safetensors"))
    msg = _raises(ValueError, r"model\.safetensors: tensor model\.layers\.1\.mlp\.up_proj\.weight has shape \(48, 31\), "
                              r"expected \(48, 32\)", d)
    assert str(d) in msg


def test_wrong_tensor_shape_gguf(tmp_path, hf_model):
    write_gguf(tmp_path / "s.gguf", hf_model, "qwen3", tensors={"blk.1.attn_v.weight": np.zeros((16, 32), np.float32)})
    _raises(ValueError, r"s\.gguf: tensor blk\.1\.attn_v\.weight has shape \(16, 32\), expected \(32, 32\)",
            tmp_path / "s.gguf")
    write_gguf(tmp_path / "m.gguf", hf_model, "qwen3", drop={"blk.0.ffn_down.weight"})
    _raises(ValueError, r"m\.gguf: missing tensor blk\.0\.ffn_down\.weight", tmp_path / "m.gguf")


def test_unsupported_quant_type(tmp_path, hf_model):
    bad = np.zeros((32, 32), np.int32)  # GGUF type I32: not a weight encoding we dequantise
    write_gguf(tmp_path / "q.gguf", hf_model, "qwen3", tensors={"blk.0.attn_output.weight": bad})
    _raises(ValueError, r"q\.gguf: tensor blk\.0\.attn_output\.weight has unsupported type I32", tmp_path / "q.gguf")


def test_not_a_gguf_file(tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"not a gguf at all" * 10)
    _raises(ValueError, r"x\.gguf: not a readable GGUF file", tmp_path / "x.gguf")


def test_truncated_safetensors_names_the_file_and_tensor(hf_dir, tmp_path):
    d = _copy(hf_dir, tmp_path)
    st = SafetensorsFile(str(d / "model.safetensors"))
    last = max(st.names(), key=lambda n: st.header[n]["data_offsets"][1])
    raw = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(raw[:-100])  # an interrupted download
    msg = _raises(ValueError, rf"model\.safetensors: tensor {last.replace('.', chr(92) + '.')} ends at byte "
                              rf"{len(raw)} but the file has {len(raw) - 100} bytes \(truncated\?\)", d)
    assert str(d) in msg
