"""The Flax sentence encoder vs transformers (torch): all-MiniLM-L6-v2, and a tiny random BERT with
CLS pooling and "bert."-prefixed tensor names; bucketing; sharding; one-line loader errors."""

import json
import os
import shutil

import numpy as np
import pytest
from dense_env import CI, minilm, require_dense

from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.models.safetensors_io import SafetensorsFile, save_file
from egrpo_jax.models.sentence_encoder import (
    MIN_BUCKET, SentenceEncoder, bucket_length, default_encoder_path, encoder_config,
)

require_dense()
if CI:  # see tests/models/test_smollm2_parity.py: in CI the reference must exist
    import torch
    import transformers
else:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)  # 2 shared CPU cores: torch threads spinning against XLA's are ~10x slower

LONG = " ".join(f"Sentence number {i} talks about rivers, hills and the capital cities of Europe." for i in range(40))
SENTENCES = ["Paris is the capital and largest city of France.", "Which river flows through Vienna?",
             "HÉLLO Wörld, don't split me!", "a", "Ein deutscher Satz über Berlin.", LONG]


def _reference(folder, texts, max_length, pooling="mean"):
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    if pooling == "cls":
        pooled = h[:, 0]
    else:
        m = batch["attention_mask"][..., None].float()
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    ids = [row[: int(n)] for row, n in zip(batch["input_ids"].tolist(), batch["attention_mask"].sum(1))]
    return ids, torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.fixture(scope="module")
def reference():
    return _reference(default_encoder_path(), SENTENCES, minilm().max_length)


def test_minilm_config_from_folder():
    enc = minilm()
    c = enc.config
    assert (c.num_layers, c.hidden_size, c.num_heads, c.pooling, enc.max_length, enc.dim) == (6, 384, 12, "mean", 256, 384)


def test_tokens_match_transformers(reference):
    ids, _ = reference
    ours = minilm().tokenize(SENTENCES)
    assert ours == ids
    assert len(ours[-1]) == 256  # the long text is cut at max_seq_length, [SEP] kept


def test_embeddings_match_transformers(reference):
    _, want = reference
    got = minilm().encode(SENTENCES)
    cos = (got * want).sum(-1)
    print("MiniLM cosine vs transformers:", np.round(cos, 7))
    assert cos.min() >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-5)


def test_bfloat16_matmuls_stay_close_to_float32():
    a, b = minilm().encode(SENTENCES), minilm("bfloat16").encode(SENTENCES)
    assert (a * b).sum(-1).min() >= 0.999


def test_sharded_batches_equal_one_device():
    one = SentenceEncoder(default_encoder_path(), mesh=single_device_mesh())
    many = minilm()  # all 8 fake CPU devices of the test session
    assert many.mesh.devices.size == 8
    texts = SENTENCES * 3  # 18 rows: padded to 32, sharded 8 ways
    np.testing.assert_allclose(one.encode(texts), many.encode(texts), atol=2e-5)
    assert minilm().encode([]).shape == (0, 384)


def test_batches_are_power_of_two_buckets_longest_first():
    enc = minilm()
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(1, 257, size=500)]
    batches = enc.batches(lengths)
    seen = np.concatenate([idx for idx, _, _ in batches])
    assert sorted(seen.tolist()) == list(range(500))
    assert [lengths[i] for i in seen] == sorted(lengths, reverse=True)
    allowed = {bucket_length(n, 256) for n in range(1, 257)}
    assert allowed == {8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256}
    for idx, rows, length in batches:
        assert length in allowed and max(lengths[i] for i in idx) <= length
        assert rows & (rows - 1) == 0 and len(idx) <= rows and rows * length <= enc.batch_tokens
    assert bucket_length(1, 256) == MIN_BUCKET and bucket_length(300, 256) == 256


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A random 2-layer BERT saved by transformers as BertForMaskedLM ("bert." names), CLS pooling."""
    folder = str(tmp_path_factory.mktemp("tiny_bert"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=64)
    transformers.BertForMaskedLM(cfg).save_pretrained(folder)
    src = default_encoder_path()
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(os.path.join(src, name), folder)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 64}, f)
    os.makedirs(os.path.join(folder, "1_Pooling"))
    with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
        json.dump({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, f)
    return folder


def test_any_bert_folder_cls_pooling_and_prefixed_names(tiny_bert):
    assert any(n.startswith("bert.") for n in SafetensorsFile(os.path.join(tiny_bert, "model.safetensors")).names())
    enc = SentenceEncoder(tiny_bert)
    assert (enc.config.pooling, enc.max_length, enc.dim) == ("cls", 64, 32)
    ids, want = _reference(tiny_bert, SENTENCES, 64, pooling="cls")
    assert enc.tokenize(SENTENCES) == ids
    assert (enc.encode(SENTENCES) * want).sum(-1).min() >= 0.9999


def _copy(src, dst, edit=None, drop=()):
    os.makedirs(dst)
    for name in os.listdir(src):
        if name in drop:
            continue
        if os.path.isdir(os.path.join(src, name)):
            shutil.copytree(os.path.join(src, name), os.path.join(dst, name))
        else:
            os.symlink(os.path.join(src, name), os.path.join(dst, name))
    if edit:
        path = os.path.join(dst, "config.json")
        cfg = json.load(open(path))
        os.remove(path)
        json.dump({**cfg, **edit}, open(path, "w"))
    return str(dst)


@pytest.mark.parametrize("edit,drop,error", [
    ({"model_type": "roberta"}, (), "config.json: model_type 'roberta' is not supported (want 'bert')"),
    ({"position_embedding_type": "relative_key"}, (), "position_embedding_type 'relative_key': only 'absolute'"),
    ({"hidden_act": "swish"}, (), "hidden_act 'swish': supported"),
    (None, ("tokenizer.json",), "tokenizer.json: file not found"),
    (None, ("model.safetensors",), "model.safetensors: file not found"),
])
def test_bad_encoder_folders_are_one_line_errors(tmp_path, edit, drop, error):
    folder = _copy(default_encoder_path(), tmp_path / "enc", edit, drop)
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        SentenceEncoder(folder)
    assert error in str(e.value) and "\n" not in str(e.value)


def test_missing_tensor_and_unsupported_pooling_are_named(tmp_path, tiny_bert):
    folder = _copy(tiny_bert, tmp_path / "enc", drop=("model.safetensors", "1_Pooling"))
    f = SafetensorsFile(os.path.join(tiny_bert, "model.safetensors"))
    save_file({n: np.asarray(f.get(n)) for n in f.names() if "layer.1.output.dense.bias" not in n},
              os.path.join(folder, "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing tensor bert\.encoder\.layer\.1\.output\.dense\.bias$"):
        SentenceEncoder(folder)
    os.makedirs(os.path.join(folder, "1_Pooling"))
    with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as fh:
        json.dump({"pooling_mode_max_tokens": True}, fh)
    with pytest.raises(ValueError, match="pooling_mode_max_tokens.*supported pooling_mode_mean_tokens"):
        encoder_config(folder)
    with pytest.raises(FileNotFoundError, match="encoder folder not found"):
        SentenceEncoder(str(tmp_path / "nowhere"))
