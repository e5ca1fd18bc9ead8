"""A policy (decoder + tokenizer) from any path a command accepts, and what a checkpoint folder says about it.

Three kinds of path hold a policy: an HF folder (config.json + safetensors + tokenizer files), a
.gguf file, and a training checkpoint folder written by `egrpo sft` / `egrpo train`. The last holds
orbax steps (params, optimizer state) plus POLICY_FILE (the decoder's ModelConfig) and, in
TOKENIZER_DIR, the run's tokenizer, so `convert`, `eval`, `generate` and `demo --model` read it
without the run's config.

A LoRA run's steps hold only the adapters; POLICY_FILE then names the base they were trained on
("base": its path, or the seed of a random model.tiny, and models.lora.base_sha256 of its weights),
and loading the folder rebuilds that base, checks its hash and puts the adapters on it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from flax import nnx

from egrpo_jax.checkpoint import restore_params
from egrpo_jax.errors import RunError
from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.loading import Pretrained, load_pretrained
from egrpo_jax.models.lora import BASE, base_sha256
from egrpo_jax.models.sharding import create_model
from egrpo_jax.models.tokenizer import Tokenizer
from egrpo_jax.models.tokenizer_io import load_tokenizer

POLICY_FILE = "policy.json"
TOKENIZER_DIR = "tokenizer"
_FORMAT = 1


def is_checkpoint_folder(path: str) -> bool:
    return os.path.isfile(os.path.join(path, POLICY_FILE))


def save_policy_files(directory: str, model_cfg: ModelConfig, tokenizer, base: Mapping[str, Any] | None = None) -> None:
    """Write POLICY_FILE and TOKENIZER_DIR into a training checkpoint folder (call on process 0).

    Only the project's own tokenizers have files; a run with another one (a test double) records
    none, and loading the folder then asks for a tokenizer. `base` (base_record) is a LoRA run's base.
    """
    saved = isinstance(tokenizer, (Tokenizer, ByteTokenizer))
    os.makedirs(directory, exist_ok=True)
    if saved:
        tokenizer.save(os.path.join(directory, TOKENIZER_DIR))
    spec = {"format": _FORMAT, "model": model_cfg.to_dict(), "tokenizer": TOKENIZER_DIR if saved else None}
    if base is not None:
        spec["base"] = dict(base)
    tmp = os.path.join(directory, POLICY_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2)
    os.replace(tmp, os.path.join(directory, POLICY_FILE))  # never a half-written description


def _read_spec(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, POLICY_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(spec, dict) or spec.get("format") != _FORMAT or not isinstance(spec.get("model"), dict):
        raise ValueError(f"{path}: not a policy description of format {_FORMAT} (keys format, model, tokenizer)")
    return spec


def read_model_config(directory: str) -> tuple[ModelConfig, str | None]:
    """(the decoder's config, the tokenizer folder or None) of a training checkpoint folder."""
    path = os.path.join(directory, POLICY_FILE)
    spec = _read_spec(directory)
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(spec["model"]) - known)
    if unknown:
        raise ValueError(f"{path}: model key {unknown[0]!r} is not a ModelConfig field")
    tok = spec.get("tokenizer")
    return ModelConfig(**spec["model"]), (os.path.join(directory, tok) if tok else None)


# ---- a LoRA run's base --------------------------------------------------------------------------

def base_record(model, path: str, seed: int) -> dict[str, Any]:
    """What a LoRA run's POLICY_FILE says of its base: the weights at `path` ("" = a random model.tiny
    drawn from `seed`) and their hash (models.lora.base_sha256). Every process must call it."""
    return {"path": os.path.abspath(path) if path else "", "seed": None if path else int(seed),
            "sha256": base_sha256(model)}


def read_base(directory: str) -> dict[str, Any] | None:
    """The base record of a LoRA run's checkpoint folder (None: the folder holds full weights)."""
    return _read_spec(directory).get("base")


def _describe(base: Mapping[str, Any]) -> str:
    where = base["path"] or f"a random model.tiny (seed {base['seed']})"
    return f"{where} (sha256 {base['sha256'][:12]})"


def check_base(directory: str, base: Mapping[str, Any], key: str) -> None:
    """RunError (one line, naming both) unless the LoRA run in `directory` was trained on `base`;
    `key` names the config key that points at the folder."""
    saved = read_base(directory)
    if saved is None:
        raise RunError(f"{key} {directory}: holds full weights, not LoRA adapters; this run trains adapters on "
                       f"{_describe(base)}")
    if saved["sha256"] != base["sha256"]:
        raise RunError(f"{key} {directory}: its adapters were trained on base {_describe(saved)}, this run's base "
                       f"is {_describe(base)}")


def _load_lora_run(path: str, saved: ModelConfig, tok_spec: str, *, mesh, dtype: str, param_dtype: str | None,
                   remat: bool):
    """A LoRA run's base (rebuilt as its POLICY_FILE names it, hash checked) with the run's adapters."""
    base = read_base(path)
    if base is None:
        raise ValueError(f"{os.path.join(path, POLICY_FILE)}: a LoRA policy without its base record (key base)")
    cfg = saved.replace(dtype=dtype, param_dtype=param_dtype or saved.param_dtype, remat=remat)
    if base["path"]:
        model = load_policy(base["path"], mesh=mesh, dtype=dtype, param_dtype=cfg.param_dtype, remat=remat,
                            tokenizer=tok_spec, lora=cfg.lora_settings()).model
    else:
        model = create_model(cfg, mesh=mesh, seed=int(base["seed"]))
    got = base_sha256(model)
    if got != base["sha256"]:
        raise ValueError(f"{path}: its adapters were trained on base {_describe(base)}; the weights there now "
                         f"have sha256 {got[:12]}")
    return restore_params(path, model, what=nnx.LoRAParam)


def load_policy(path: str, *, mesh=None, dtype: str = "float32", param_dtype: str | None = None,
                remat: bool = False, tokenizer: str = "", lora: Mapping[str, Any] | None = None,
                seed: int = 0) -> Pretrained:
    """The policy at `path` (HF folder, .gguf file or training checkpoint folder), its parameters
    placed on `mesh`. `tokenizer` (a load_tokenizer spec) replaces the one stored with the weights.
    A LoRA run's folder gives its base with its adapters. `lora` (ModelConfig.lora_settings(), rank
    > 0) makes the weights at `path` the frozen base of fresh adapters drawn from `seed`."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: file not found")
    if os.path.isdir(path) and is_checkpoint_folder(path):
        saved, tok_dir = read_model_config(path)
        if not tokenizer and tok_dir is None:
            raise ValueError(f"{path}: the run's tokenizer was not saved with the checkpoint; name one "
                             "(model.tokenizer / --tokenizer)")
        tok = load_tokenizer(tokenizer or tok_dir)
        if saved.lora_rank and lora:
            raise ValueError(f"{path}: holds LoRA adapters, not a base: to train them on, give their base as "
                             "model.path and this folder as checkpoint.init_from; or merge them into an HF folder "
                             "with `egrpo convert` and use that")
        if saved.lora_rank:
            model = _load_lora_run(path, saved, tokenizer or tok_dir, mesh=mesh, dtype=dtype,
                                   param_dtype=param_dtype, remat=remat)
        else:
            cfg = saved.replace(dtype=dtype, param_dtype=param_dtype or saved.param_dtype, remat=remat,
                                **(lora or {}))
            model = restore_params(path, create_model(cfg, mesh=mesh, seed=seed), what=BASE)
        return Pretrained(model, tok, model.cfg, path)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        if any(name.isdigit() for name in os.listdir(path)):
            raise ValueError(f"{path}: a training checkpoint without {POLICY_FILE} (written before checkpoints "
                             "carried their policy): export it with `egrpo convert --checkpoint DIR --config FILE`")
        raise ValueError(f"{path}: not a policy: expected an HF folder (config.json + safetensors), a .gguf file "
                         f"or a training checkpoint folder ({POLICY_FILE}, written by egrpo sft / train)")
    loaded = load_pretrained(path, mesh=mesh, dtype=dtype, param_dtype=param_dtype, remat=remat,
                             with_tokenizer=not tokenizer, lora=lora, seed=seed)
    if tokenizer:
        loaded = dataclasses.replace(loaded, tokenizer=load_tokenizer(tokenizer))
    return loaded
