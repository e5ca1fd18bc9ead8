"""`egrpo convert` and `egrpo generate` on a tiny GGUF (with an embedded tokenizer and chat template)."""

import json

import numpy as np
import pytest

from egrpo_jax import cli
from egrpo_jax.models import load_pretrained
from egrpo_jax.testing.greedy import greedy_generate
from egrpo_jax.models.hf_io import host_params

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
transformers = pytest.importorskip("transformers")
from gguf_tiny import write_gguf
from hf_tiny import hf_logits, make_hf_model
from tok_tiny import train_tiny_bpe

TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" \
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    bpe = train_tiny_bpe()
    hf = make_hf_model("llama", vocab_size=bpe.get_vocab_size(),
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_gguf(path, hf, "llama", tokenizer=bpe, chat_template=TEMPLATE)
    return path, hf


def test_convert_gguf_to_hf_folder(tiny_gguf, tmp_path, capsys):
    path, hf = tiny_gguf
    out = tmp_path / "hf"
    assert cli.main(["convert", "--model", str(path), "--out", str(out)]) == 0
    assert "llama, 2 layers" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["rope_parameters"]["rope_theta"] == 10000.0
    # lossless: the HF folder loads to the very same parameters and tokenizer
    a, b = load_pretrained(str(path)), load_pretrained(str(out))
    pa, pb = host_params(a.model), host_params(b.model)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=str(k))
    s = "The capital of France is Paris."
    assert a.tokenizer.encode(s) == b.tokenizer.encode(s)
    assert a.tokenizer.apply_chat_template([{"role": "user", "content": s}]) == \
        b.tokenizer.apply_chat_template([{"role": "user", "content": s}])
    # transformers loads the export and agrees with the original model
    back = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokens = np.array([[1, 5, 9, 200, 17]])
    assert np.abs(hf_logits(back, tokens) - hf_logits(hf, tokens)).max() < 1e-5
    htok = transformers.AutoTokenizer.from_pretrained(out)
    assert htok.encode(s, add_special_tokens=False) == a.tokenizer.encode(s)


def test_convert_bf16_and_bad_input(tiny_gguf, tmp_path, capsys):
    path, _ = tiny_gguf
    assert cli.main(["convert", "--model", str(path), "--out", str(tmp_path / "bf"), "--dtype", "bfloat16"]) == 0
    cfg = json.loads((tmp_path / "bf" / "config.json").read_text())
    assert cfg["dtype"] == "bfloat16"
    assert load_pretrained(str(tmp_path / "bf")).config.param_dtype == "float32"  # loads as asked (default fp32)
    assert cli.main(["convert", "--model", str(tmp_path / "missing.gguf"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.gguf: file not found" in capsys.readouterr().err


def test_generate_is_greedy_with_chat_template(tiny_gguf, capsys):
    path, _ = tiny_gguf
    assert cli.main(["generate", "--model", str(path), "--prompt", "Where is Paris?", "--max-new-tokens", "6",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["prompt"] == "<|im_start|>user\nWhere is Paris?<|im_end|>\n<|im_start|>assistant\n"
    loaded = load_pretrained(str(path))
    want = greedy_generate(loaded.model, out["prompt_ids"], 6, stop_ids=loaded.tokenizer.eos_ids)
    assert out["new_ids"] == want
