"""Pipeline settings outside the run-config schema: the world (synthetic or real), the tokenizer,
the default policy, evaluation.

A pipeline config file (configs/demo_cpu.py, configs/replicate_cpu.py) defines three functions:
`get_config()` (the RL run, egrpo_jax.config schema), `get_sft_config()` (the SFT run, same
schema) and `get_pipeline()` (a PipelineSettings). Data and tokenizer paths in the two run
configs are filled in by the pipeline (they live in the run folder).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any

from egrpo_jax import config as C
from egrpo_jax.datagen.real.build import RealConfig
from egrpo_jax.datagen.real.oracle import check_demo_config
from egrpo_jax.datagen.synth.build import DEMO_TOOLS
from egrpo_jax.datagen.synth.oracle import DemoConfig
from egrpo_jax.datagen.synth.world import WorldConfig
from egrpo_jax.rewards.registry import resolve_reward
from egrpo_jax.tools.registry import ToolConfig


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    # The real-world set (datagen/real) instead of the synthetic world when set: `world` is then
    # unused, the demos are its oracle's (perfect / early-stop kinds only) and the policy must be
    # a pretrained one that brings its tokenizer (`model` or `egrpo demo --model`).
    real: RealConfig | None = None
    model: str = ""  # the policy when `egrpo demo` gets no --model ("" = a tiny one from scratch)
    demos: DemoConfig = dataclasses.field(default_factory=DemoConfig)
    # One ToolConfig for the demos AND the rollouts: the demos contain the exact tool text.
    tools: ToolConfig = DEMO_TOOLS
    vocab_size: int = 1024  # BPE vocabulary (from-scratch policy only)
    atomic_prompt: bool = True  # the fixed system prompt is one token of the BPE (see datagen.synth.build.train_data_tokenizer)
    eval_questions: int = 0  # held-out test questions evaluated (0 = all)
    eval_k: int = 3  # samples per question (Pass@1 = mean over them, Pass@k)
    eval_temperature: float = 0.6  # the paper's inference sampling
    eval_top_p: float = 0.95
    eval_batch: int = 16  # questions per engine batch
    eval_seed: int = 1234

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise ValueError(f"pipeline.vocab_size must be >= 300, got {self.vocab_size}")
        for key in ("eval_k", "eval_batch"):
            if getattr(self, key) < 1:
                raise ValueError(f"pipeline.{key} must be >= 1, got {getattr(self, key)}")
        if self.eval_questions < 0:
            raise ValueError(f"pipeline.eval_questions must be >= 0, got {self.eval_questions}")
        if not 0.0 < self.eval_top_p <= 1.0 or self.eval_temperature < 0:
            raise ValueError(f"pipeline.eval_temperature must be >= 0 and eval_top_p in (0, 1], got "
                             f"{self.eval_temperature}, {self.eval_top_p}")
        self.world.validate()
        if self.real is not None:
            self.real.validate()
            check_demo_config(self.demos)


@dataclasses.dataclass
class PipelineConfig:
    rl: Any  # ml_collections.ConfigDict (unlocked: the pipeline fills in paths)
    sft: Any
    pipeline: PipelineSettings
    source: str


def _module(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--config {path}: file not found")
    spec = importlib.util.spec_from_file_location("_egrpo_pipeline_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    for fn in ("get_config", "get_sft_config", "get_pipeline"):
        if not hasattr(module, fn):
            raise ValueError(f"--config {path}: defines no {fn}() (a pipeline config needs get_config, "
                             "get_sft_config and get_pipeline)")
    return module


def load_pipeline_config(path: str) -> PipelineConfig:
    """Read a pipeline config file; both run configs are validated (paths are checked when used)."""
    m = _module(path)
    out = []
    for fn in ("get_config", "get_sft_config"):
        cfg = getattr(m, fn)()  # built from config.default_config(), like every config file
        try:
            C.validate(cfg)
        except C.ConfigError as e:
            raise C.ConfigError(f"{path} {fn}(): {e}") from None
        out.append(cfg)
    try:
        resolve_reward(out[0].rl.reward)  # a reward module that does not import fails now, not after the SFT start
    except C.ConfigError as e:
        raise C.ConfigError(f"{path} get_config(): {e}") from None
    settings = m.get_pipeline()
    if not isinstance(settings, PipelineSettings):
        raise TypeError(f"--config {path}: get_pipeline() must return e2e.settings.PipelineSettings")
    return PipelineConfig(rl=out[0], sft=out[1], pipeline=settings, source=path)
