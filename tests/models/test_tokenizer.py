"""Tokenizer wrapper: a project-trained BPE, HF folder save/load vs transformers, sentencepiece, templates."""

import json

import pytest
import sentencepiece as spm
from tok_tiny import CORPUS, train_tiny_bpe

from egrpo_jax.models.chat_template import TemplateError
from egrpo_jax.models.tokenizer import Tokenizer

STRINGS = ["The capital of France is Paris.", "born in 1812 <answer>x</answer>", "  odd\tspacing\n\n", "ünïcödé ✓"]
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is Paris?"}]


def test_from_tokenizers_defaults_to_chatml():
    bpe = train_tiny_bpe()
    tok = Tokenizer.from_tokenizers(bpe, eos="<|im_end|>")
    assert tok.vocab_size == bpe.get_vocab_size()
    assert tok.eos_id == bpe.token_to_id("<|im_end|>") == tok.pad_id
    assert tok.eos_ids == (bpe.token_to_id("<|im_end|>"), bpe.token_to_id("<|endoftext|>"))
    text = tok.apply_chat_template(MSGS)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhere is Paris?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    assert tok.apply_chat_template(MSGS, add_generation_prompt=False).endswith("<|im_end|>\n")
    ids = tok.encode(text)
    assert ids.count(bpe.token_to_id("<|im_start|>")) == 3  # special tokens written in text stay whole
    assert tok.decode(ids) == text
    assert "<|im_start|>" not in tok.decode(ids, skip_special_tokens=True)
    for s in STRINGS:
        assert tok.decode(tok.encode(s)) == s


def test_bad_special_token_is_an_error():
    with pytest.raises(ValueError, match=r"eos token '<nope>' is not in the vocabulary"):
        Tokenizer.from_tokenizers(train_tiny_bpe(), eos="<nope>")


def test_save_load_round_trip_and_transformers_agrees(tmp_path):
    transformers = pytest.importorskip("transformers")
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}\n{% endfor %}" \
               "{% if add_generation_prompt %}[assistant] {% endif %}"
    tok = Tokenizer.from_tokenizers(train_tiny_bpe(), eos="<|im_end|>", chat_template=template)
    tok.save(str(tmp_path))
    again = Tokenizer.from_pretrained(str(tmp_path))
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    for s in STRINGS:
        assert again.encode(s) == tok.encode(s) == hf.encode(s, add_special_tokens=False)
    assert (again.eos_id, again.pad_id, again.eos_ids) == (tok.eos_id, tok.pad_id, tok.eos_ids)
    assert again.apply_chat_template(MSGS) == tok.apply_chat_template(MSGS) == hf.apply_chat_template(
        MSGS, tokenize=False, add_generation_prompt=True)
    assert hf.eos_token == "<|im_end|>"


def test_folder_with_generation_config_eos_list(tmp_path):
    bpe = train_tiny_bpe()
    plain = Tokenizer.from_tokenizers(bpe)  # no eos given: the first end-of-turn special token found
    assert plain.eos_id == bpe.token_to_id("<|im_end|>") == 2
    plain.save(str(tmp_path))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [5, 7]}))
    tok = Tokenizer.from_pretrained(str(tmp_path))
    assert tok.eos_id == 2 and tok.eos_ids == (2, 5, 7, bpe.token_to_id("<|endoftext|>"))


def test_sentencepiece_model(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=120,
                                   model_type="bpe", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    tok = Tokenizer.from_pretrained(str(tmp_path / "sp.model"))
    assert tok.vocab_size == 120 and tok.eos_id == sp.eos_id() and tok.bos_id == sp.bos_id()
    s = "The capital of France is Paris."
    assert tok.encode(s) == sp.encode(s)
    assert tok.encode(s + "</s>") == sp.encode(s) + [sp.eos_id()]  # control piece in text stays whole
    assert tok.decode(tok.encode(s)) == s
    tok.save(str(tmp_path / "out"))
    assert Tokenizer.from_pretrained(str(tmp_path / "out")).encode(s) == sp.encode(s)


def test_template_errors_are_one_line():
    tok = Tokenizer.from_tokenizers(train_tiny_bpe(), chat_template="{{ raise_exception('no system role') }}")
    with pytest.raises(TemplateError, match="chat template: no system role"):
        tok.apply_chat_template(MSGS)
    broken = Tokenizer.from_tokenizers(train_tiny_bpe(), chat_template="{% for m in messages %}")
    with pytest.raises(TemplateError, match=r"chat template line 1"):
        broken.apply_chat_template(MSGS)
    with pytest.raises(TemplateError, match=r"messages\[0\]"):
        broken.apply_chat_template(["hello"])
