"""A policy (decoder + tokenizer) from any path a command accepts, and what a checkpoint folder says about it.

Three kinds of path hold a policy: an HF folder (config.json + safetensors + tokenizer files), a
.gguf file, and a training checkpoint folder written by `egrpo sft` / `egrpo train`. The last holds
orbax steps (params, optimizer state) plus POLICY_FILE (the decoder's ModelConfig) and, in
TOKENIZER_DIR, the run's tokenizer, so `convert`, `eval`, `generate` and `demo --model` read it
without the run's config.
"""

from __future__ import annotations

import dataclasses
import json
import os

from egrpo_jax.checkpoint import restore_params
from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.loading import Pretrained, load_pretrained
from egrpo_jax.models.sharding import create_model
from egrpo_jax.models.tokenizer import Tokenizer
from egrpo_jax.models.tokenizer_io import load_tokenizer

POLICY_FILE = "policy.json"
TOKENIZER_DIR = "tokenizer"
_FORMAT = 1


def is_checkpoint_folder(path: str) -> bool:
    return os.path.isfile(os.path.join(path, POLICY_FILE))


def save_policy_files(directory: str, model_cfg: ModelConfig, tokenizer) -> None:
    """Write POLICY_FILE and TOKENIZER_DIR into a training checkpoint folder (call on process 0).

    Only the project's own tokenizers have files; a run with another one (a test double) records
    none, and loading the folder then asks for a tokenizer.
    """
    saved = isinstance(tokenizer, (Tokenizer, ByteTokenizer))
    os.makedirs(directory, exist_ok=True)
    if saved:
        tokenizer.save(os.path.join(directory, TOKENIZER_DIR))
    spec = {"format": _FORMAT, "model": model_cfg.to_dict(), "tokenizer": TOKENIZER_DIR if saved else None}
    tmp = os.path.join(directory, POLICY_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2)
    os.replace(tmp, os.path.join(directory, POLICY_FILE))  # never a half-written description


def read_model_config(directory: str) -> tuple[ModelConfig, str | None]:
    """(the decoder's config, the tokenizer folder or None) of a training checkpoint folder."""
    path = os.path.join(directory, POLICY_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(spec, dict) or spec.get("format") != _FORMAT or not isinstance(spec.get("model"), dict):
        raise ValueError(f"{path}: not a policy description of format {_FORMAT} (keys format, model, tokenizer)")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(spec["model"]) - known)
    if unknown:
        raise ValueError(f"{path}: model key {unknown[0]!r} is not a ModelConfig field")
    tok = spec.get("tokenizer")
    return ModelConfig(**spec["model"]), (os.path.join(directory, tok) if tok else None)


def load_policy(path: str, *, mesh=None, dtype: str = "float32", param_dtype: str | None = None,
                remat: bool = False, tokenizer: str = "") -> Pretrained:
    """The policy at `path` (HF folder, .gguf file or training checkpoint folder), its parameters
    placed on `mesh`. `tokenizer` (a load_tokenizer spec) replaces the one stored with the weights."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: file not found")
    if os.path.isdir(path) and is_checkpoint_folder(path):
        saved, tok_dir = read_model_config(path)
        cfg = saved.replace(dtype=dtype, param_dtype=param_dtype or saved.param_dtype, remat=remat)
        if not tokenizer and tok_dir is None:
            raise ValueError(f"{path}: the run's tokenizer was not saved with the checkpoint; name one "
                             "(model.tokenizer / --tokenizer)")
        tok = load_tokenizer(tokenizer or tok_dir)
        model = restore_params(path, create_model(cfg, mesh=mesh, seed=0))
        return Pretrained(model, tok, cfg, path)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        if any(name.isdigit() for name in os.listdir(path)):
            raise ValueError(f"{path}: a training checkpoint without {POLICY_FILE} (written before checkpoints "
                             "carried their policy): export it with `egrpo convert --checkpoint DIR --config FILE`")
        raise ValueError(f"{path}: not a policy: expected an HF folder (config.json + safetensors), a .gguf file "
                         f"or a training checkpoint folder ({POLICY_FILE}, written by egrpo sft / train)")
    loaded = load_pretrained(path, mesh=mesh, dtype=dtype, param_dtype=param_dtype, remat=remat,
                             with_tokenizer=not tokenizer)
    if tokenizer:
        loaded = dataclasses.replace(loaded, tokenizer=load_tokenizer(tokenizer))
    return loaded
