"""The run configuration: one ml_collections ConfigDict for the whole stack, validated on load.

A config file is a Python file with `get_config()` returning a ConfigDict (usually
`default_config()` with changes); keys it leaves out keep their defaults, unknown keys are an
error. Command-line overrides look like `--config.rl.alpha=0.3` and are parsed to the type of the
default value. Every value is checked before anything compiles; a bad one is a one-line error
naming the key, the value and what is allowed.

This module is the bottom floor: schema, loading and validation only, importing nothing of the
project, starting nothing. It is also the one home of every named option (the tuples below); the
modules that implement an option import its tuple from here. `egrpo_jax.assembly` turns a loaded
config into the other packages' settings and parts (engine, tools, policy).
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

# ---- the named options, one home each -------------------------------------------------------------
DTYPES = ("float32", "bfloat16", "float16")  # models.config, loading
FAMILIES = ("llama", "qwen2", "qwen3")  # models.config (the decoder's architectures)
PROMPT_STYLES = ("full", "short")  # agent.template (tool schemas + turn format, or one paragraph)
AGGREGATIONS = ("seq_mean", "token_mean", "dr_grpo")  # rl.loss.token_weights
ADVANTAGE_NORMS = ("group_std", "batch_std", "none")  # rl.advantages
ALPHA_SCHEDULES = ("constant", "linear")  # rewards.egrpo.alpha_schedule
SCHEDULES = ("cosine", "constant")  # rl.learner.lr_schedule
OPTIMIZERS = ("adamw", "sgd")  # rl.learner.make_optimizer
BACKENDS = ("bm25", "dense", "hybrid", "http")  # an index folder of that kind, or a Search-R1 server
ENTITY_CREDITS = ("thought", "grounded")  # rewards.api.credited_entities
REWARDS = ("egrpo",)  # rewards.registry (rl.reward: one of these, or a user's 'module:function')
REWARD_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")  # 'package.module:function'
# the projections a LoRA adapter can target (models.decoder): attention q/k/v/o, MLP gate/up/down
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


class ConfigError(ValueError):
    pass


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = dict(
        path="",  # HF folder, .gguf file or training checkpoint folder; "" = a random model.tiny
        tokenizer="",  # "" = the one of model.path; "byte" = byte-level (smoke runs); or a tokenizer path
        dtype="float32",
        param_dtype="float32",
        remat=False,
        # vocab_size 0: the tokenizer's vocabulary
        tiny=dict(family="qwen2", vocab_size=257, hidden_size=64, intermediate_size=128, num_layers=2,
                  num_heads=4, num_kv_heads=2, head_dim=16, tie_embeddings=False,
                  max_position_embeddings=4096),
        # LoRA (rank 0 = off): only the adapters train; targets: a comma string or a tuple of LORA_TARGETS;
        # base_dtype: the frozen base weights' dtype (bfloat16 halves their memory; the adapters keep
        # model.param_dtype)
        lora=dict(rank=0, alpha=16.0, targets=ml_collections.FieldReference(",".join(LORA_TARGETS), field_type=object),
                  base_dtype="float32"),
    )
    c.mesh = dict(data=1, fsdp=-1, tensor=1)  # -1: the remaining devices
    # correct_demos_only: SFT skips demos whose answer is wrong (False: learn from imperfect ones too)
    c.data = dict(questions="", corpus="", demos="", correct_demos_only=True, batch_size=64, seed=0)
    c.search = dict(backend="bm25", index_dir="", url="", topk=10, snippet_chars=200, page_tokens=1024,
                    failure_warn_rate=0.5, failure_stop_steps=3)  # a step with more failed tool calls warns;
    # failure_stop_steps such steps in a row stop the run (0 = never). See tools/health.py.
    # max_total_tokens: 4096 keeps eval's KV cache CPU-sized (SmolLM2, 4 x k=3 rows: ~2 GB, 32k: ~18 GB);
    # the paper's 32k is set by configs/tpu_common.py
    # slots: engine rows for training rollouts (0 = every rollout of a step at once; fewer rows stream the
    # rollouts through them, see agent/loop.py); eval uses eval.batch_size x eval.k rows.
    # segment_steps: decode steps between host visits (0 = lock-step turns).
    c.agent = dict(max_tool_calls=40, max_total_tokens=4096, max_turn_tokens=0, prompt_style="full", slots=0,
                   segment_steps=0)
    c.sampling = dict(temperature=1.0, top_p=1.0, top_k=0)  # the rollouts RL trains on
    c.rl = dict(
        alpha=0.3, alpha_schedule="constant", alpha_final=0.0, alpha_decay_steps=0, group_size=8,
        eps_low=0.2, eps_high=0.28, aggregation="seq_mean", dr_grpo_norm=0, beta=0.0,
        advantage_norm="group_std", dynamic_sampling=False, dynamic_max_rounds=3, strict_match=False,
        off_policy_steps=0, is_cap=2.0,
        # reward: a REWARDS name or 'module:function' (rewards/registry.py, docs/rewards.md);
        # entity_credit: "thought" = the paper's gamma, "grounded" = only entities the rollout has seen
        reward="egrpo", entity_credit="thought",
    )
    c.optim = dict(name="adamw", lr=2e-6, warmup_steps=0, schedule="constant", min_lr_ratio=0.0, clip_norm=1.0,
                   weight_decay=0.0, b1=0.9, b2=0.999, microbatches=1, logprob_chunk=0)
    # pack_demos: SFT packs several demos into one row (each attends only to itself): same loss, fewer
    # padded positions when demo lengths are uneven (rl.batch.pack_sequences)
    c.train = dict(steps=80, seed=0, max_seq_len=4096, pack_demos=True)
    c.checkpoint = dict(dir="", every=10, keep=3, resume=False, init_from="")  # resume: also --resume
    c.logging = dict(dir="", every=1, progress=True)
    # `egrpo eval`: k samples per question at the paper's inference sampling; batch_size questions
    # (batch_size * k engine rows) at a time; limit = the first N questions (0 = all)
    c.eval = dict(questions="", k=3, batch_size=4, limit=0, seed=0, temperature=0.6, top_p=0.95, top_k=0,
                  strict_match=False)
    return c


# ---- validation rules: key -> (check(value) -> bool, "what is allowed") ----------------------------

def _int(lo: int | None = None, hi: int | None = None, extra: Sequence[int] = ()) -> tuple[Callable, str]:
    def ok(v):
        return isinstance(v, int) and not isinstance(v, bool) and (
            v in extra or ((lo is None or v >= lo) and (hi is None or v <= hi)))
    rng = " and ".join(s for s in ((f">= {lo}" if lo is not None else ""), (f"<= {hi}" if hi is not None else "")) if s)
    alt = f" or one of {list(extra)}" if extra else ""
    return ok, f"an integer {rng}{alt}".rstrip()


def _float(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> tuple[Callable, str]:
    def ok(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or v <= hi)
    parts = [f"{'>' if lo_open else '>='} {lo}" if lo is not None else "", f"<= {hi}" if hi is not None else ""]
    return ok, "a number " + " and ".join(p for p in parts if p)


def _choice(options: Sequence[str]) -> tuple[Callable, str]:
    return (lambda v: v in options), f"one of {list(options)}"


def lora_targets(value: str | Sequence[str]) -> tuple[str, ...]:
    """model.lora.targets as a tuple in LORA_TARGETS order: a comma string ("q, v") or a sequence of names."""
    names = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"model.lora.targets: names must be strings, got {value!r}")
    names = [n.strip() for n in names]
    if not names or not all(n in LORA_TARGETS for n in names):
        raise ValueError(f"model.lora.targets: {value!r} is not a non-empty subset of {list(LORA_TARGETS)}")
    return tuple(t for t in LORA_TARGETS if t in names)


def _targets_ok(v) -> bool:
    try:
        lora_targets(v)
    except ValueError:
        return False
    return True


_BOOL = ((lambda v: isinstance(v, bool)), "true or false")
_STR = ((lambda v: isinstance(v, str)), "a string")
_REWARD = ((lambda v: isinstance(v, str) and (v in REWARDS or REWARD_SPEC.fullmatch(v) is not None)),
           f"one of {list(REWARDS)} or 'module:function' (an importable module's function)")

RULES: dict[str, tuple[Callable, str]] = {
    "model.path": _STR, "model.tokenizer": _STR, "model.dtype": _choice(DTYPES),
    "model.param_dtype": _choice(DTYPES), "model.remat": _BOOL,
    "model.tiny.family": _choice(FAMILIES), "model.tiny.vocab_size": _int(2, extra=(0,)),
    "model.tiny.hidden_size": _int(1), "model.tiny.intermediate_size": _int(1), "model.tiny.num_layers": _int(1),
    "model.tiny.num_heads": _int(1), "model.tiny.num_kv_heads": _int(1), "model.tiny.head_dim": _int(2),
    "model.tiny.tie_embeddings": _BOOL, "model.tiny.max_position_embeddings": _int(2),
    "model.lora.rank": _int(0), "model.lora.alpha": _float(0.0, lo_open=True),
    "model.lora.targets": (_targets_ok, f"a comma string or tuple of names from {list(LORA_TARGETS)}"),
    "model.lora.base_dtype": _choice(DTYPES),
    "mesh.data": _int(1, extra=(-1,)), "mesh.fsdp": _int(1, extra=(-1,)), "mesh.tensor": _int(1, extra=(-1,)),
    "data.questions": _STR, "data.corpus": _STR, "data.demos": _STR, "data.batch_size": _int(1),
    "data.seed": _int(0), "data.correct_demos_only": _BOOL,
    "search.backend": _choice(BACKENDS), "search.index_dir": _STR, "search.url": _STR, "search.topk": _int(1),
    "search.snippet_chars": _int(1), "search.page_tokens": _int(1),
    "search.failure_warn_rate": _float(0.0, 1.0), "search.failure_stop_steps": _int(0),
    "agent.max_tool_calls": _int(0), "agent.max_total_tokens": _int(2), "agent.max_turn_tokens": _int(0),
    "agent.slots": _int(0), "agent.segment_steps": _int(0), "agent.prompt_style": _choice(PROMPT_STYLES),
    "sampling.temperature": _float(0.0), "sampling.top_p": _float(0.0, 1.0, lo_open=True), "sampling.top_k": _int(0),
    "rl.alpha": _float(0.0), "rl.alpha_schedule": _choice(ALPHA_SCHEDULES), "rl.alpha_final": _float(0.0),
    "rl.alpha_decay_steps": _int(0), "rl.group_size": _int(2), "rl.eps_low": _float(0.0, 1.0),
    "rl.eps_high": _float(0.0), "rl.aggregation": _choice(AGGREGATIONS), "rl.dr_grpo_norm": _int(0),
    "rl.beta": _float(0.0), "rl.advantage_norm": _choice(ADVANTAGE_NORMS), "rl.dynamic_sampling": _BOOL,
    "rl.dynamic_max_rounds": _int(0), "rl.strict_match": _BOOL, "rl.off_policy_steps": _int(0),
    "rl.is_cap": _float(0.0, lo_open=True), "rl.reward": _REWARD, "rl.entity_credit": _choice(ENTITY_CREDITS),
    "optim.name": _choice(OPTIMIZERS), "optim.lr": _float(0.0, lo_open=True), "optim.warmup_steps": _int(0), "optim.schedule": _choice(SCHEDULES),
    "optim.min_lr_ratio": _float(0.0, 1.0), "optim.clip_norm": _float(0.0), "optim.weight_decay": _float(0.0),
    "optim.b1": _float(0.0, 1.0), "optim.b2": _float(0.0, 1.0), "optim.microbatches": _int(1),
    "optim.logprob_chunk": _int(0),
    "train.steps": _int(1), "train.seed": _int(0), "train.max_seq_len": _int(2), "train.pack_demos": _BOOL,
    "checkpoint.dir": _STR, "checkpoint.every": _int(1), "checkpoint.keep": _int(1), "checkpoint.resume": _BOOL,
    "checkpoint.init_from": _STR,
    "logging.dir": _STR, "logging.every": _int(1), "logging.progress": _BOOL,
    "eval.questions": _STR, "eval.k": _int(1), "eval.batch_size": _int(1), "eval.limit": _int(0),
    "eval.seed": _int(0), "eval.temperature": _float(0.0), "eval.top_p": _float(0.0, 1.0, lo_open=True),
    "eval.top_k": _int(0), "eval.strict_match": _BOOL,
}


def _within(lo: float, hi: float, why: str = "", *, hi_open: bool = False) -> tuple[Callable, str]:
    def ok(v):
        return lo <= v < hi if hi_open else lo <= v <= hi
    return ok, f"in [{lo:g}, {hi:g}{')' if hi_open else ']'}" + (f" ({why})" if why else "")


_STEPS, _TOKENS = 10**7, 1 << 20
# Sane ranges, checked after RULES (a value of the right type can still be nonsense). Kept apart
# from RULES so that each RULES entry stays the value's type; the reason is part of the message.
RANGES: dict[str, tuple[Callable, str]] = {
    "model.tiny.vocab_size": _within(0, 1 << 20), "model.tiny.hidden_size": _within(1, 1 << 16),
    "model.tiny.intermediate_size": _within(1, 1 << 18), "model.tiny.num_layers": _within(1, 512),
    "model.tiny.num_heads": _within(1, 1024), "model.tiny.num_kv_heads": _within(1, 1024),
    "model.tiny.head_dim": _within(2, 1024), "model.tiny.max_position_embeddings": _within(2, 1 << 21),
    "model.lora.rank": _within(0, 1 << 12), "model.lora.alpha": _within(0.0, 1e4),
    "mesh.data": _within(-1, 1 << 16), "mesh.fsdp": _within(-1, 1 << 16), "mesh.tensor": _within(-1, 1 << 16),
    "data.batch_size": _within(1, 1 << 16), "data.seed": _within(0, 2**32 - 1), "train.seed": _within(0, 2**32 - 1),
    "search.topk": _within(1, 100, "hits per query; the paper uses 10, the search server allows 100"),
    "search.snippet_chars": _within(1, 100_000), "search.page_tokens": _within(1, _TOKENS),
    "search.failure_stop_steps": _within(0, _STEPS),
    "agent.max_tool_calls": _within(0, 1000), "agent.max_total_tokens": _within(2, _TOKENS),
    "agent.max_turn_tokens": _within(0, _TOKENS), "agent.slots": _within(0, 1 << 20),
    "agent.segment_steps": _within(0, _TOKENS),
    "sampling.temperature": _within(0.0, 4.0, "0 is greedy; above ~2 sampling is close to uniform noise"),
    "sampling.top_k": _within(0, _TOKENS),
    "rl.alpha": _within(0.0, 1.0, "the reward of a wrong rollout; above 1 it outscores a correct one"),
    "rl.alpha_final": _within(0.0, 1.0, "as rl.alpha"), "rl.alpha_decay_steps": _within(0, _STEPS),
    "rl.group_size": _within(2, 1024), "rl.eps_high": _within(0.0, 1.0), "rl.dr_grpo_norm": _within(0, 1 << 24),
    "rl.beta": _within(0.0, 10.0, "the KL coefficient"),
    "rl.dynamic_max_rounds": _within(0, 64, "extra rollout rounds per step"),
    "rl.off_policy_steps": _within(0, 1, "0: on-policy; 1: step t+1's rollouts run while step t trains"),
    "rl.is_cap": _within(0.0, 100.0, "the truncation of the off-policy importance weight"),
    "optim.lr": _within(0.0, 0.1, "larger steps diverge; the demo uses 3e-3, real models 1e-6..1e-5"),
    "optim.warmup_steps": _within(0, _STEPS), "optim.clip_norm": _within(0.0, 1e4),
    "optim.weight_decay": _within(0.0, 1.0),
    "optim.b1": _within(0.0, 1.0, "Adam's decay rate", hi_open=True),
    "optim.b2": _within(0.0, 1.0, "Adam's decay rate; 1 divides by zero", hi_open=True),
    "optim.microbatches": _within(1, 4096), "optim.logprob_chunk": _within(0, _TOKENS),
    "train.steps": _within(1, _STEPS), "train.max_seq_len": _within(2, _TOKENS),
    "checkpoint.every": _within(1, _STEPS), "checkpoint.keep": _within(1, 1000), "logging.every": _within(1, _STEPS),
    "eval.k": _within(1, 1024), "eval.batch_size": _within(1, 1 << 16), "eval.seed": _within(0, 2**32 - 1),
    "eval.temperature": _within(0.0, 4.0, "0 is greedy (then eval.k must be 1)"), "eval.top_k": _within(0, _TOKENS),
}
assert set(RANGES) <= set(RULES), sorted(set(RANGES) - set(RULES))


def _unknown(key: str, known: Sequence[str]) -> ConfigError:
    """The error for an unknown key, with the nearest known key when one is close."""
    section, _, leaf = key.rpartition(".")
    here = sorted(k for k in known if k.rpartition(".")[0] == section)
    # a typo of a key in its own section, the right name in the wrong section, or a typo anywhere
    near = [f"{section}.{m}" for m in difflib.get_close_matches(leaf, [k.rpartition(".")[2] for k in here], 1, 0.75)]
    # (of several keys with that name, the least nested: a bare `alpha` is rl.alpha, not model.lora.alpha)
    same = sorted((k for k in known if k.rpartition(".")[2] == leaf), key=lambda k: k.count("."))
    near = near or same or difflib.get_close_matches(key, known, 1, 0.85)
    if near:
        return ConfigError(f"config key {key}: unknown; did you mean {near[0]}?")
    here = here or sorted({k.split(".")[0] for k in known})
    return ConfigError(f"config key {key}: unknown; allowed here: {', '.join(here)}")


def flatten(cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def validate(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Check every key, then the rules that tie keys together."""
    flat = flatten(cfg)
    for key in flat:
        if key not in RULES:
            raise _unknown(key, list(RULES))
    for key, value in flat.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key {key} = {value!r}: must be a finite number")
    for key, (ok, allowed) in RULES.items():
        if key not in flat:
            raise ConfigError(f"config key {key}: missing; must be {allowed}")
        if not ok(flat[key]):
            raise ConfigError(f"config key {key} = {flat[key]!r}: must be {allowed}")
        if key in RANGES and not RANGES[key][0](flat[key]):
            raise ConfigError(f"config key {key} = {flat[key]!r}: must be {RANGES[key][1]}")
    rl, optim = cfg.rl, cfg.optim
    if rl.alpha_schedule == "linear" and rl.alpha_decay_steps < 1:
        raise ConfigError(f"config key rl.alpha_decay_steps = {rl.alpha_decay_steps}: must be >= 1 when "
                          "rl.alpha_schedule = 'linear'")
    if rl.aggregation == "dr_grpo" and rl.dr_grpo_norm < 1:
        raise ConfigError(f"config key rl.dr_grpo_norm = {rl.dr_grpo_norm}: must be >= 1 (the constant "
                          "normaliser, e.g. agent.max_total_tokens) when rl.aggregation = 'dr_grpo'")
    if rl.off_policy_steps and rl.dynamic_sampling:
        raise ConfigError("config key rl.off_policy_steps = 1: not with rl.dynamic_sampling = True (its refill "
                          "rounds draw questions while the next step's rollouts run)")
    if optim.warmup_steps > cfg.train.steps:
        raise ConfigError(f"config key optim.warmup_steps = {optim.warmup_steps}: must be <= train.steps "
                          f"({cfg.train.steps})")
    if cfg.search.backend == "http" and not cfg.search.url:
        raise ConfigError("config key search.url = '': must be an http(s) url when search.backend = 'http'")
    if cfg.search.backend in ("dense", "hybrid") and not cfg.search.index_dir:
        raise ConfigError(f"config key search.index_dir = '': must be an index folder when search.backend = "
                          f"'{cfg.search.backend}' (build one with `egrpo index --kind {cfg.search.backend}`)")
    if optim.logprob_chunk and optim.logprob_chunk & (optim.logprob_chunk - 1):
        raise ConfigError(f"config key optim.logprob_chunk = {optim.logprob_chunk}: must be 0 or a power of two")
    t = cfg.model.tiny
    if not cfg.model.path and t.num_heads % t.num_kv_heads:
        raise ConfigError(f"config key model.tiny.num_heads = {t.num_heads}: must be a multiple of "
                          f"model.tiny.num_kv_heads ({t.num_kv_heads})")
    lora = cfg.model.lora
    if lora.rank == 0 and lora.base_dtype != "float32":
        raise ConfigError(f"config key model.lora.base_dtype = {lora.base_dtype!r}: only with model.lora.rank > 0 "
                          "(without LoRA every weight has model.param_dtype)")
    if cfg.eval.temperature == 0 and cfg.eval.k > 1:
        raise ConfigError(f"config key eval.k = {cfg.eval.k}: must be 1 when eval.temperature = 0 (greedy "
                          "decoding repeats one rollout)")
    return cfg


# ---- loading -------------------------------------------------------------------------------------

def _merge(base: ml_collections.ConfigDict, new: ml_collections.ConfigDict, prefix: str = "") -> None:
    for k, v in new.items():
        key = f"{prefix}{k}"
        if k not in base:
            while isinstance(v, (dict, ml_collections.ConfigDict)) and v:  # a misspelt section: name a key in it
                k, v = next(iter(v.items()))
                key = f"{key}.{k}"
            raise _unknown(key, list(RULES))
        if isinstance(base[k], ml_collections.ConfigDict):
            if not isinstance(v, (ml_collections.ConfigDict, dict)):
                raise ConfigError(f"config key {key} = {v!r}: must be a section (dict)")
            _merge(base[k], ml_collections.ConfigDict(v) if isinstance(v, dict) else v, key + ".")
        else:
            try:
                base[k] = v
            except TypeError:
                raise ConfigError(f"config key {key} = {v!r}: must be {RULES.get(key, ('', 'of the default type'))[1]}") from None


def _parse_value(key: str, text: str, default: Any) -> Any:
    if isinstance(default, bool):
        low = text.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ConfigError(f"config key {key} = {text!r}: must be true or false")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"config key {key} = {text!r}: must be an integer") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"config key {key} = {text!r}: must be a number") from None
    return text


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    """Apply 'a.b.c=value' strings (the part after `--config.`)."""
    flat = flatten(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"config override {item!r}: expected key=value, e.g. rl.alpha=0.3")
        key, text = item.split("=", 1)
        if key not in flat:
            raise _unknown(key, list(flat))
        value = _parse_value(key, text, flat[key])
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        try:
            node[last] = value
        except TypeError:
            raise ConfigError(f"config key {key} = {text!r}: must be {RULES[key][1]}") from None


def load_config(path: str | None = None, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Defaults <- the file's get_config() <- overrides; validated, then locked."""
    cfg = default_config()
    if path:
        # ml_collections convention: `file.py:ARG` calls get_config(ARG) (e.g. a TPU slice name)
        arg = None
        if not os.path.isfile(path) and ":" in path:
            path, arg = path.rsplit(":", 1)
        if not os.path.isfile(path):
            raise ConfigError(f"--config {path}: file not found")
        spec = importlib.util.spec_from_file_location("_egrpo_config_file", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        if not hasattr(module, "get_config"):
            raise ConfigError(f"--config {path}: defines no get_config()")
        try:
            _merge(cfg, module.get_config() if arg is None else module.get_config(arg))
        except (KeyError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"--config {path}:{arg}: {e}") from None
    apply_overrides(cfg, overrides)
    validate(cfg)
    cfg.lock()
    return cfg
