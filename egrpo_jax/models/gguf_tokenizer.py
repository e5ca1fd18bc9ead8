"""Rebuild a byte-level BPE `tokenizers.Tokenizer` from GGUF metadata (llama.cpp's "gpt2" model).

The GGUF stores tokens, merges, token types and special ids, plus a pre-tokenizer *name*
(`tokenizer.ggml.pre`); the split regex per name follows llama.cpp's llama-vocab.cpp.
"""

from __future__ import annotations

import functools

import gguf
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from egrpo_jax.models.gguf_io import open_gguf
from egrpo_jax.models.tokenizer import Tokenizer

_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# pre-tokenizer name -> (split regex or None for GPT-2's, split digits one by one first?)
_PRE = {
    "default": (None, False), "gpt2": (None, False), "gpt-2": (None, False), "olmo": (None, False),
    "smollm": (None, True), "starcoder": (None, True), "refact": (None, True), "command-r": (None, True),
    "codeshell": (None, True), "exaone": (None, True), "minerva-7b": (None, True),
    "llama3": (_LLAMA3, False), "llama-v3": (_LLAMA3, False), "llama-bpe": (_LLAMA3, False),
    "smaug-bpe": (_LLAMA3, False), "falcon3": (_LLAMA3, False), "dbrx": (_LLAMA3, False),
    "qwen2": (_QWEN2, False), "deepseek-r1-qwen": (_QWEN2, False), "megrez": (_QWEN2, False),
}
_IGNORE_MERGES = {"llama3", "llama-v3", "llama-bpe", "smaug-bpe", "falcon3", "dbrx"}
_CONTROL, _USER_DEFINED = 3, 4


@functools.lru_cache(maxsize=1)
def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _field(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def tokenizer_from_reader(reader: gguf.GGUFReader, path: str) -> Tokenizer:
    kind = _field(reader, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise ValueError(f"{path}: key tokenizer.ggml.model = {kind!r} is not supported (allowed: gpt2 byte-level BPE)")
    pre_name = _field(reader, "tokenizer.ggml.pre", "default")
    if pre_name not in _PRE:
        raise ValueError(f"{path}: key tokenizer.ggml.pre = {pre_name!r} is not supported (allowed: {sorted(_PRE)})")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    merges = _field(reader, "tokenizer.ggml.merges")
    if tokens is None or merges is None:
        raise ValueError(f"{path}: missing key tokenizer.ggml.{'tokens' if tokens is None else 'merges'}")
    types = _field(reader, "tokenizer.ggml.token_type") or [1] * len(tokens)

    alphabet = _byte_alphabet()
    allowed = set(alphabet.values())
    spelled = [t if set(t) <= allowed else "".join(alphabet[b] for b in t.encode("utf-8")) for t in tokens]
    vocab = {t: i for i, t in enumerate(spelled)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    regex, digits = _PRE[pre_name]
    bpe = models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False,
                     ignore_merges=pre_name in _IGNORE_MERGES)
    tok = HFTokenizer(bpe)
    if regex is None:
        steps = [pre_tokenizers.Digits(individual_digits=True)] if digits else []
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    else:
        steps = [pre_tokenizers.Split(Regex(regex), behavior="isolated"),
                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    if pre_name in ("qwen2", "deepseek-r1-qwen"):
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    # Control tokens (<|im_start|> ...) are matched whole in text and are special; user-defined
    # tokens (<think> ...) are matched whole but decoded as text. Both keep their GGUF ids.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == _CONTROL and t in vocab])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == _USER_DEFINED and t in vocab])

    def tid(key: str) -> int | None:
        v = _field(reader, f"tokenizer.ggml.{key}")
        return int(v) if v is not None and 0 <= int(v) < len(tokens) else None

    extra = [i for i in (tid("eot_token_id"), tid("eom_token_id")) if i is not None]
    return Tokenizer.from_tokenizers(tok, chat_template=_field(reader, "tokenizer.chat_template"),
                                     eos=tid("eos_token_id"), pad=tid("padding_token_id"), bos=tid("bos_token_id"),
                                     extra_eos=extra, source=path)


def tokenizer_from_gguf(path: str) -> Tokenizer:
    return tokenizer_from_reader(open_gguf(path), path)
