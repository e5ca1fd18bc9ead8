"""Build the mesh, policy model and tokenizer of a run from its config (shared by sft and train)."""

from __future__ import annotations

from typing import Any

from egrpo_jax import config as C


def build_mesh(cfg):
    from egrpo_jax.mesh import make_mesh

    return make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)


def build_tokenizer(cfg) -> Any:
    spec = cfg.model.tokenizer or cfg.model.path
    if spec == "byte":
        from egrpo_jax.models.byte_tokenizer import ByteTokenizer

        return ByteTokenizer()
    if not spec:
        raise C.ConfigError("config key model.tokenizer = '': set a tokenizer path or 'byte' when model.path is ''")
    from egrpo_jax.models.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(spec)


def build_policy(cfg, mesh):
    """(model, tokenizer): pretrained weights from model.path, else a random model.tiny; then, if
    checkpoint.init_from names a training checkpoint folder, its latest params (e.g. SFT -> RL)."""
    if cfg.model.path:
        from egrpo_jax.models.loading import load_pretrained

        loaded = load_pretrained(cfg.model.path, mesh=mesh, dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype,
                                 with_tokenizer=not cfg.model.tokenizer)
        model = loaded.model
        tok = loaded.tokenizer if not cfg.model.tokenizer else build_tokenizer(cfg)
    else:
        from egrpo_jax.models.sharding import create_model

        model = create_model(C.model_config(cfg), mesh=mesh, seed=cfg.train.seed)
        tok = build_tokenizer(cfg)
    vocab = int(tok.vocab_size)
    if vocab > model.cfg.vocab_size:
        raise C.ConfigError(f"config key model.tiny.vocab_size = {model.cfg.vocab_size}: must be >= the "
                            f"tokenizer's vocabulary ({vocab})")
    if cfg.checkpoint.init_from:
        from egrpo_jax.checkpoint import restore_params

        restore_params(cfg.checkpoint.init_from, model)
    return model, tok


def optim_settings(cfg):
    from egrpo_jax.rl.learner import OptimSettings

    o = cfg.optim
    return OptimSettings(name=o.name, lr=o.lr, warmup_steps=o.warmup_steps, schedule=o.schedule, total_steps=cfg.train.steps,
                         min_lr_ratio=o.min_lr_ratio, clip_norm=o.clip_norm, weight_decay=o.weight_decay,
                         b1=o.b1, b2=o.b2)


def loss_settings(cfg, kind: str):
    from egrpo_jax.rl.learner import LossSettings

    from egrpo_jax.sampling.api import SamplingParams

    return LossSettings(kind=kind, eps_low=cfg.rl.eps_low, eps_high=cfg.rl.eps_high,
                        beta=cfg.rl.beta if kind == "rl" else 0.0, logprob_chunk=cfg.optim.logprob_chunk,
                        sampling=C.sampling_params(cfg) if kind == "rl" else SamplingParams())
