"""The skeleton `egrpo sft` and `egrpo train` share: checkpoint guard, policy files, restore, the step
loop with metrics and checkpoints, and clean-up whatever happens.

A run owns a learner (its train state), a resumable data stream (get_state / set_state) and a step
function `step(step, rng) -> metrics`; the skeleton carries the PRNG key from step to step (one
split per step, also across a resume) and saves state, key and stream position together, so a
resumed run sees the same batches and seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax

from egrpo_jax import compile_cache
from egrpo_jax.checkpoint import Checkpointer, rng_from_meta
from egrpo_jax.config import ConfigError
from egrpo_jax.metrics_log import MetricsLogger
from egrpo_jax.models.lora import has_adapters
from egrpo_jax.policy import base_record, check_base, is_checkpoint_folder, read_base, save_policy_files

StepFn = Callable[[int, jax.Array], dict[str, float]]  # (step, this step's PRNG key) -> metrics


class ResumableStream(Protocol):
    def get_state(self) -> Any: ...

    def set_state(self, state: Any) -> None: ...


def open_checkpoints(cfg) -> Checkpointer | None:
    """checkpoint.dir's Checkpointer (None without one). A folder that already holds steps is only
    continued with --resume (checkpoint.resume), never silently."""
    if not cfg.checkpoint.dir:
        return None
    ckpt = Checkpointer(cfg.checkpoint.dir, every=cfg.checkpoint.every, keep=cfg.checkpoint.keep)
    if ckpt.latest_step() is not None and not cfg.checkpoint.resume:
        step = ckpt.latest_step()
        ckpt.close()
        raise ConfigError(f"checkpoint.dir {cfg.checkpoint.dir} already holds step {step}; "
                          "pass --resume to continue it or choose another checkpoint.dir")
    return ckpt


def compile_metrics(before: Mapping[str, float]) -> dict[str, float]:
    """What compiling cost since `before` (a copy of compile_cache.watch()): seconds, and programs
    compiled because the persistent cache did not hold them (0 on a warm cache)."""
    now = compile_cache.watch()
    return {"time/compile_s": now["compile_s"] - before["compile_s"],
            "compile/cache_misses": float(now["misses"] - before["misses"])}


def lora_base(cfg, model) -> dict | None:
    """The base record (policy.base_record) of a model with LoRA adapters, None without them."""
    if not has_adapters(model):
        return None
    if cfg.model.path and is_checkpoint_folder(cfg.model.path) and read_base(cfg.model.path) is not None:
        raise ConfigError(f"config key model.path = {cfg.model.path}: holds LoRA adapters, not a base; train them on "
                          "with model.path = their base and checkpoint.init_from = this folder")
    return base_record(model, cfg.model.path, cfg.train.seed)


def run_steps(cfg, ckpt: Checkpointer | None, learner, stream: ResumableStream, step_fn: StepFn, *,
              policy: tuple | None, log_dir: str, desc: str, shown: Mapping[str, str],
              after_step: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Steps start+1 .. train.steps; returns the last step's metrics ({} when already complete).

    `policy` (model, tokenizer) is described in the checkpoint folder (policy.POLICY_FILE) so the
    folder loads without this run's config; with LoRA adapters that includes the base, and a
    resumed run must have the same base. `ckpt` is closed at the end, also on an error.
    """
    rng = jax.random.key(cfg.train.seed)
    start = 0
    try:
        if ckpt is not None:
            base = lora_base(cfg, policy[0]) if policy is not None else None
            if base is not None and ckpt.latest_step() is not None:
                check_base(ckpt.directory, base, "checkpoint.dir")  # before POLICY_FILE is written again
            if policy is not None and jax.process_index() == 0:
                save_policy_files(ckpt.directory, policy[0].cfg, policy[1], base=base)
            if ckpt.latest_step() is not None:
                state, meta = ckpt.restore(learner.state)
                learner.set_state(state)
                stream.set_state(meta["data"])
                saved = rng_from_meta(meta)
                rng = rng if saved is None else saved
                start = int(meta["step"])
        log = MetricsLogger(log_dir, every=cfg.logging.every, total=cfg.train.steps, initial=start,
                            progress=cfg.logging.progress, shown=shown, desc=desc)
        last: dict[str, float] = {}
        try:
            for step in range(start + 1, cfg.train.steps + 1):
                rng, sub = jax.random.split(rng)
                before = dict(compile_cache.watch())
                last = step_fn(step, sub)
                last.update(compile_metrics(before))
                log.log(step, last)
                if after_step is not None:
                    after_step(step, last)
                if ckpt is not None and (ckpt.should_save(step) or step == cfg.train.steps):
                    ckpt.save(step, learner.state, rng=rng, data_state=stream.get_state())
        finally:
            log.close()
    finally:
        if ckpt is not None:
            ckpt.close()
    return last
