"""Tokenizer wrapper: `tokenizers` (HF tokenizer.json, GGUF-embedded BPE) or sentencepiece `.model`.

Implements tokenizer_api.TokenizerLike whatever the source: `encode` / `encode_batch` (never
add special tokens: callers decide), `encode_text` (control-token text stays ordinary text: for data
from tools, questions, corpora), `control_tokens`, `decode` / `decode_batch`, `apply_chat_template` (the
model's jinja template; ChatML when `chat_template` is None), `eos_ids` (every token that ends a turn),
`pad_id`, `vocab_size`; also `eos_id`, `bos_id` and `save(dir)`. No torch anywhere. GGUF files are
read by models.gguf_tokenizer; models.tokenizer_io.load_tokenizer picks the reader for a path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from typing import Any

import sentencepiece
import tokenizers

from egrpo_jax.models.chat_template import render

# ChatML, used when a tokenizer carries no template (e.g. a BPE trained by the project). Documented in
# Tokenizer.apply_chat_template.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Tokens that end an assistant turn in the families we support; each counts as EOS when it exists as a
# special token of the vocabulary.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>", "</s>")


def _plain_copy(tok: tokenizers.Tokenizer) -> tokenizers.Tokenizer:
    """A copy of `tok` that never matches an added token: all are marked special, and special
    tokens are encoded as the text they spell (`encode_special_tokens`)."""
    d = json.loads(tok.to_str())
    for t in d.get("added_tokens", []):
        t["special"] = True
    plain = tokenizers.Tokenizer.from_str(json.dumps(d))
    plain.encode_special_tokens = True
    return plain


class _HFBackend:
    def __init__(self, tok: tokenizers.Tokenizer):
        self.tok = tok
        self._plain: tuple[int, tokenizers.Tokenizer] | None = None  # (vocab size it was made at, copy)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return self.tok.decode_batch([list(ids) for ids in batch], skip_special_tokens=False)

    def encode_text(self, text: str) -> list[int]:
        # Tokens may be added to `tok` after wrapping (datagen.synth.build adds the atomic prompt): rebuild then.
        size = self.tok.get_vocab_size(with_added_tokens=True)
        if self._plain is None or self._plain[0] != size:
            self._plain = (size, _plain_copy(self.tok))
        return self._plain[1].encode(text, add_special_tokens=False).ids

    def control_tokens(self) -> dict[str, int]:
        return {t.content: i for i, t in self.tok.get_added_tokens_decoder().items()}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.tok.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self.tok.id_to_token(i)

    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def special_tokens(self) -> dict[str, int]:
        return {t.content: i for i, t in self.tok.get_added_tokens_decoder().items() if t.special}

    def save(self, out_dir: str) -> dict[str, Any]:
        self.tok.save(os.path.join(out_dir, "tokenizer.json"))
        return {"tokenizer_class": "PreTrainedTokenizerFast"}


class _SPBackend:
    """sentencepiece .model; control pieces written in the text (e.g. "</s>") are kept whole."""

    def __init__(self, path: str):
        self.path = path
        self.sp = sentencepiece.SentencePieceProcessor(model_file=path)
        n = self.sp.get_piece_size()
        self._special = {self.sp.id_to_piece(i): i for i in range(n) if self.sp.is_control(i)}
        self._special.pop("", None)
        keys = sorted(self._special, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, keys)) + ")") if keys else None

    def encode(self, text: str) -> list[int]:
        if self._split is None:
            return list(self.sp.encode(text))
        out: list[int] = []
        for part in self._split.split(text):
            if part in self._special:
                out.append(self._special[part])
            elif part:
                out.extend(self.sp.encode(part))
        return out

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(ids, False) for ids in batch]

    def encode_text(self, text: str) -> list[int]:
        return list(self.sp.encode(text))  # control pieces are never produced from text

    def control_tokens(self) -> dict[str, int]:
        return dict(self._special)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        out, run = [], []
        inv = {v: k for k, v in self._special.items()}
        for i in ids:
            if int(i) in inv:
                out.append(self.sp.decode(run))
                run = []
                if not skip_special_tokens:
                    out.append(inv[int(i)])
            else:
                run.append(int(i))
        out.append(self.sp.decode(run))
        return "".join(out)

    def token_to_id(self, token: str) -> int | None:
        i = self.sp.piece_to_id(token)
        return None if i == self.sp.unk_id() and token != self.sp.id_to_piece(i) else i

    def id_to_token(self, i: int) -> str | None:
        return self.sp.id_to_piece(int(i)) if 0 <= int(i) < self.sp.get_piece_size() else None

    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def special_tokens(self) -> dict[str, int]:
        return dict(self._special)

    def save(self, out_dir: str) -> dict[str, Any]:
        shutil.copyfile(self.path, os.path.join(out_dir, "tokenizer.model"))
        return {"tokenizer_class": "LlamaTokenizer"}


def _token_text(value: Any) -> str | None:
    """tokenizer_config.json writes special tokens as a string or {"content": ...}."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class Tokenizer:
    """Uniform tokenizer; build with from_pretrained / from_tokenizers / models.gguf_io."""

    def __init__(self, backend, *, chat_template: str | None = None, eos: int | str | None = None,
                 pad: int | str | None = None, bos: int | str | None = None, extra_eos: Iterable[int | str] = (),
                 source: str = "<memory>"):
        self._b = backend
        self.source = source
        self.chat_template = chat_template
        self.has_chat_template = chat_template is not None
        self.eos_id = self._resolve(eos, "eos")
        self.bos_id = self._resolve(bos, "bos")
        pad_id = self._resolve(pad, "pad")
        ids = [self.eos_id] if self.eos_id is not None else []
        ids += [self._resolve(e, "eos") for e in extra_eos]
        specials = backend.special_tokens()
        ids += [specials[t] for t in END_OF_TURN_TOKENS if t in specials]
        self.eos_ids: tuple[int, ...] = tuple(dict.fromkeys(i for i in ids if i is not None))
        if self.eos_id is None and self.eos_ids:
            self.eos_id = self.eos_ids[0]
        # Padding fills positions that attention and the loss mask out, so its id only has to be in
        # the vocabulary: the declared pad token, else EOS, else id 0. pad_token_id is the declared
        # one (None when there is none: saved files then name no pad_token).
        self.pad_token_id = pad_id if pad_id is not None else self.eos_id
        self.pad_id: int = self.pad_token_id if self.pad_token_id is not None else 0

    def _resolve(self, tok: int | str | None, what: str) -> int | None:
        if tok is None:
            return None
        if isinstance(tok, int):
            if not 0 <= tok < self.vocab_size:
                raise ValueError(f"{self.source}: {what} token id {tok} is outside the vocabulary (size {self.vocab_size})")
            return tok
        i = self._b.token_to_id(tok)
        if i is None:
            raise ValueError(f"{self.source}: {what} token {tok!r} is not in the vocabulary")
        return i

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_tokenizers(cls, tok: tokenizers.Tokenizer, *, chat_template: str | None = None,
                        eos: int | str | None = None, pad: int | str | None = None, bos: int | str | None = None,
                        extra_eos: Iterable[int | str] = (), source: str = "<memory>") -> Tokenizer:
        """Wrap a `tokenizers.Tokenizer` (a BPE the project trained, one rebuilt from GGUF metadata)."""
        return cls(_HFBackend(tok), chat_template=chat_template, eos=eos, pad=pad, bos=bos, extra_eos=extra_eos,
                   source=source)

    @classmethod
    def from_sentencepiece(cls, path: str, *, chat_template: str | None = None) -> Tokenizer:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: file not found")
        b = _SPBackend(path)
        eos = b.sp.eos_id()
        bos = b.sp.bos_id()
        pad = b.sp.pad_id()
        return cls(b, chat_template=chat_template, eos=eos if eos >= 0 else None, bos=bos if bos >= 0 else None,
                   pad=pad if pad >= 0 else None, source=path)

    @classmethod
    def from_pretrained(cls, path: str) -> Tokenizer:
        """An HF folder (tokenizer.json or tokenizer.model), or a .model / tokenizer.json file."""
        if path.endswith(".gguf"):
            raise ValueError(f"{path}: a GGUF file; read it with models.tokenizer_io.load_tokenizer")
        if os.path.isfile(path):
            if path.endswith(".model"):
                return cls.from_sentencepiece(path)
            return cls(_HFBackend(tokenizers.Tokenizer.from_file(path)), source=path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path}: file not found")
        return cls._from_folder(path)

    @classmethod
    def _from_folder(cls, folder: str) -> Tokenizer:
        tj, sp = os.path.join(folder, "tokenizer.json"), os.path.join(folder, "tokenizer.model")
        cfg = _read_json_opt(os.path.join(folder, "tokenizer_config.json"))
        template = cfg.get("chat_template")
        if isinstance(template, list):  # older format: [{"name": ..., "template": ...}]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        jinja = os.path.join(folder, "chat_template.jinja")
        if os.path.exists(jinja):
            with open(jinja, encoding="utf-8") as f:
                template = f.read()
        if os.path.exists(tj):
            try:
                backend = _HFBackend(tokenizers.Tokenizer.from_file(tj))
            except Exception as e:  # noqa: BLE001 - the library's message lacks the path
                raise ValueError(f"{tj}: cannot parse tokenizer ({e})") from None
            source = tj
        elif os.path.exists(sp):
            backend, source = _SPBackend(sp), sp
        else:
            raise FileNotFoundError(f"{tj}: file not found (nor tokenizer.model)")
        gen = _read_json_opt(os.path.join(folder, "generation_config.json"))
        model_cfg = _read_json_opt(os.path.join(folder, "config.json"))
        extra = []
        for d in (gen, model_cfg):
            e = d.get("eos_token_id")
            extra += e if isinstance(e, list) else ([e] if isinstance(e, int) else [])
        eos = _token_text(cfg.get("eos_token"))
        pad = _token_text(cfg.get("pad_token"))
        bos = _token_text(cfg.get("bos_token"))
        if isinstance(backend, _SPBackend):
            eos = eos or (backend.sp.eos_id() if backend.sp.eos_id() >= 0 else None)
            bos = bos or (backend.sp.bos_id() if backend.sp.bos_id() >= 0 else None)
        return cls(backend, chat_template=template, eos=eos, pad=pad, bos=bos, extra_eos=extra, source=source)

    # ------------------------------------------------------------------ the API

    @property
    def vocab_size(self) -> int:
        return self._b.vocab_size()

    @property
    def backend(self):
        """The underlying `tokenizers.Tokenizer` (or sentencepiece processor)."""
        return getattr(self._b, "tok", None) or self._b.sp

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special tokens written in the text map to their ids; nothing is added."""
        return self._b.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """encode() of each text (one parallel call for tokenizer.json tokenizers)."""
        return self._b.encode_batch(texts)

    def encode_text(self, text: str) -> list[int]:
        """Token ids of `text` as plain data: the text of a special or added token (`<|im_end|>`, an
        atomic tag) is encoded as ordinary text, so no id of `control_tokens()` ever comes out.

        For everything the host did not write itself: tool output, questions, corpus documents.
        """
        ids = self._b.encode_text(text)
        controls = set(self.control_tokens().values())
        if controls.intersection(ids):
            # a BPE whose merges rebuild an added token: encode the characters one by one
            ids = [i for ch in text for i in self._b.encode_text(ch)]
            bad = controls.intersection(ids)
            if bad:
                raise ValueError(f"{self.source}: the text {text[:40]!r} cannot be encoded without the "
                                 f"control token {self.id_to_token(min(bad))!r}")
        return ids

    def control_tokens(self) -> dict[str, int]:
        """Every special or added token, by its text: ids only the prompt template may write."""
        return self._b.control_tokens()

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        return self._b.decode([int(i) for i in ids], skip_special_tokens)

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        """decode() of each id list, special tokens kept (one parallel call for tokenizer.json tokenizers)."""
        return self._b.decode_batch([[int(i) for i in ids] for ids in batch])

    def token_to_id(self, token: str) -> int | None:
        return self._b.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self._b.id_to_token(i)

    def special_tokens(self) -> dict[str, int]:
        return self._b.special_tokens()

    def apply_chat_template(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True,
                            **kwargs: Any) -> str:
        """Render `messages` ([{"role", "content"}]) with the model's jinja template.

        Without a template the ChatML format is used: "<|im_start|>{role}\\n{content}<|im_end|>\\n" per
        message, then "<|im_start|>assistant\\n" when `add_generation_prompt`. Extra kwargs (tools,
        enable_thinking, ...) are passed to the template.
        """
        tok = {k: (self.id_to_token(v) if v is not None else None)
               for k, v in (("bos_token", self.bos_id), ("eos_token", self.eos_id),
                            ("pad_token", self.pad_token_id))}
        return render(self.chat_template or CHATML_TEMPLATE, messages, add_generation_prompt=add_generation_prompt,
                      **tok, **kwargs)

    def save(self, out_dir: str) -> None:
        """Write HF tokenizer files (tokenizer.json or tokenizer.model, tokenizer_config.json, chat_template.jinja)."""
        os.makedirs(out_dir, exist_ok=True)
        cfg = self._b.save(out_dir)
        for key, i in (("eos_token", self.eos_id), ("pad_token", self.pad_token_id), ("bos_token", self.bos_id)):
            cfg[key] = self.id_to_token(i) if i is not None else None
        cfg.update(add_bos_token=False, add_eos_token=False, clean_up_tokenization_spaces=False)
        with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2, ensure_ascii=False)
        if self.chat_template is not None:
            with open(os.path.join(out_dir, "chat_template.jinja"), "w", encoding="utf-8") as f:
                f.write(self.chat_template)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, eos_ids={self.eos_ids}, pad_id={self.pad_id}, source={self.source!r})"


def _read_json_opt(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    return d if isinstance(d, dict) else {}
