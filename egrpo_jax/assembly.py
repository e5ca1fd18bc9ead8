"""The stack assembled from one run config: mesh, policy, rollout engine, tools and the settings of the
lower packages. `egrpo sft`, `train`, `eval`, `convert --checkpoint` and the demo pipelines take their
parts from here, so they cannot drift apart.

The engine's EOS, pad and stop ids all come from the tokenizer protocol (sampling.engine
Engine.for_tokenizer); the tool set gets the same tokenizer for its page budget.
"""

from __future__ import annotations

import os

from flax import nnx
from jax.sharding import Mesh

from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.agent.template import STOP_STRINGS
from egrpo_jax.checkpoint import restore_params
from egrpo_jax.config import ConfigError, lora_targets
from egrpo_jax.mesh import make_mesh
from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.sharding import create_model
from egrpo_jax.models.tokenizer_io import load_tokenizer
from egrpo_jax.policy import base_record, check_base, is_checkpoint_folder, load_policy, read_base
from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.engine import Engine
from egrpo_jax.tokenizer_api import TokenizerLike
from egrpo_jax.tools.index_folder import folder_kind
from egrpo_jax.tools.registry import ToolConfig, ToolSet, open_backend


# ---- the lower packages' settings, from the config's sections ------------------------------------

def model_config(cfg, tokenizer_vocab: int | None = None) -> ModelConfig:
    """The decoder of model.tiny (a policy trained from scratch); model.tiny.vocab_size 0 takes
    `tokenizer_vocab`."""
    t = cfg.model.tiny
    vocab = t.vocab_size or tokenizer_vocab
    if not vocab:
        raise ConfigError("config key model.tiny.vocab_size = 0: the tokenizer's vocabulary, but none is known here")
    return ModelConfig(
        family=t.family, vocab_size=vocab, hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size, num_layers=t.num_layers, num_heads=t.num_heads,
        num_kv_heads=t.num_kv_heads, head_dim=t.head_dim, tie_embeddings=t.tie_embeddings,
        qkv_bias=t.family == "qwen2", qk_norm=t.family == "qwen3",
        max_position_embeddings=t.max_position_embeddings, dtype=cfg.model.dtype,
        param_dtype=cfg.model.param_dtype, remat=cfg.model.remat, **(lora_settings(cfg) or {}),
    )


def lora_settings(cfg) -> dict | None:
    """model.lora as ModelConfig fields (None when model.lora.rank is 0: no adapters)."""
    lo = cfg.model.lora
    if not lo.rank:
        return None
    return {"lora_rank": lo.rank, "lora_alpha": float(lo.alpha), "lora_targets": lora_targets(lo.targets),
            "lora_base_dtype": lo.base_dtype}


def agent_config(cfg) -> AgentConfig:
    a = cfg.agent
    return AgentConfig(group_size=cfg.rl.group_size, max_tool_calls=a.max_tool_calls,
                       max_total_tokens=a.max_total_tokens, max_turn_tokens=a.max_turn_tokens,
                       segment_steps=a.segment_steps, prompt_style=a.prompt_style, seed=cfg.train.seed)


def sampling_params(cfg) -> SamplingParams:
    """The rollouts' sampling in training (sampling.*)."""
    s = cfg.sampling
    return SamplingParams(temperature=float(s.temperature), top_p=float(s.top_p), top_k=int(s.top_k))


def eval_sampling(cfg) -> SamplingParams:
    """The sampling of `egrpo eval` (eval.*: the paper's inference setting by default)."""
    e = cfg.eval
    return SamplingParams(temperature=float(e.temperature), top_p=float(e.top_p), top_k=int(e.top_k))


def tool_config(cfg) -> ToolConfig:
    s = cfg.search
    return ToolConfig(topk=s.topk, snippet_chars=s.snippet_chars, page_tokens=s.page_tokens)


def search_spec(cfg) -> str:
    """What tools.registry.open_backend opens for search.*: a url, an index folder or a corpus .jsonl."""
    s = cfg.search
    if s.backend == "http":
        return s.url
    if s.index_dir:
        if os.path.isdir(s.index_dir):
            kind = folder_kind(s.index_dir)
            if kind != s.backend:
                raise ConfigError(f"config key search.backend = {s.backend!r}: search.index_dir {s.index_dir} "
                                  f"holds a {kind!r} index")
        elif s.backend != "bm25":  # only BM25 can index a corpus .jsonl on the spot
            raise ConfigError(f"config key search.index_dir = {s.index_dir!r}: not an index folder; build one "
                              f"with `egrpo index --kind {s.backend}`")
        return s.index_dir
    if cfg.data.corpus:
        return cfg.data.corpus
    raise ConfigError("config key search.index_dir = '': set it (or data.corpus) when search.backend = 'bm25'")


# ---- the parts -------------------------------------------------------------------------------------

def build_mesh(cfg) -> Mesh:
    return make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)


def build_tokenizer(cfg) -> TokenizerLike:
    """model.tokenizer: "byte", a tokenizer folder / file, or "" for the one of model.path."""
    spec = cfg.model.tokenizer or cfg.model.path
    if not spec:
        raise ConfigError("config key model.tokenizer = '': set a tokenizer path or 'byte' when model.path is ''")
    return load_tokenizer(spec)


def build_policy(cfg, mesh: Mesh, *, init_from: str = "") -> tuple:
    """(model, tokenizer): model.path (HF folder, .gguf, training checkpoint folder) or a random
    model.tiny, with fresh LoRA adapters when model.lora.rank > 0; then, if `init_from` names a
    training checkpoint folder, its latest params (SFT -> RL): with LoRA, the adapters of a LoRA run
    over the same base."""
    m = cfg.model
    lora = lora_settings(cfg)
    if m.path:
        loaded = load_policy(m.path, mesh=mesh, dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat,
                             tokenizer=m.tokenizer, lora=lora, seed=cfg.train.seed)
        model, tok = loaded.model, loaded.tokenizer
    else:
        tok = build_tokenizer(cfg)
        model = create_model(model_config(cfg, int(tok.vocab_size)), mesh=mesh, seed=cfg.train.seed)
    vocab = int(tok.vocab_size)
    if vocab > model.cfg.vocab_size:
        key = "model.path" if m.path else "model.tiny.vocab_size"
        raise ConfigError(f"config key {key}: the model's vocabulary ({model.cfg.vocab_size}) must hold the "
                          f"tokenizer's ({vocab})")
    if init_from and lora:
        check_base(init_from, base_record(model, m.path, cfg.train.seed), "checkpoint.init_from")
        restore_params(init_from, model, what=nnx.LoRAParam)
    elif init_from:
        if is_checkpoint_folder(init_from) and read_base(init_from) is not None:
            raise ConfigError(f"config key checkpoint.init_from = {init_from}: holds LoRA adapters; set model.lora "
                              "as that run did and model.path to its base, or merge them with `egrpo convert`")
        restore_params(init_from, model)
    return model, tok


def build_engine(model, tokenizer: TokenizerLike, *, num_rows: int, max_len: int, sampling: SamplingParams,
                 mesh: Mesh | None = None) -> Engine:
    """The agent's rollout engine: `max_len` (agent.max_total_tokens) cache slots per row, segments
    ending at the agent's stop strings, rows at the tokenizer's EOS."""
    return Engine.for_tokenizer(model, tokenizer, num_rows=num_rows, max_len=max_len, sampling=sampling,
                                stops=STOP_STRINGS, mesh=mesh)


def build_tools(cfg, tokenizer: TokenizerLike) -> ToolSet:
    """search.* as a ToolSet (the caller closes it)."""
    return ToolSet(open_backend(search_spec(cfg)), tool_config(cfg), tokenizer=tokenizer)
