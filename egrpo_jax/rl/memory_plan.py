"""Per-device memory of a run's train step and rollout calls, from XLA's ahead-of-time compilation
(`egrpo plan-memory`; docs/tpu.md has the table for the TPU configs).

The learner and the engine are the ones `egrpo train` builds (rl.loop.RLTrainer), over an abstract
policy (models.sharding.abstract_sharded_model): parameters, optimizer state, KV cache and batches
are jax.ShapeDtypeStructs with their real shardings, so nothing is allocated and a 7B model compiles
for a 64-chip mesh of fake CPU devices. Each call is compiled at the largest shapes a run reaches:
- train: every rollout of a step (data.batch_size x rl.group_size rows, bucketed as rl.batch does)
  at agent.max_total_tokens, every token trained (the widest log-prob window);
- decode: every engine row, the whole cache as the attention window, the longest segment's buffer;
- write (prefill, tool responses): every row, one prefill chunk, the whole cache as the window.
`memory_analysis()` of a compiled SPMD executable describes one device's share.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from egrpo_jax.assembly import build_tokenizer, model_config
from egrpo_jax.mesh import make_mesh
from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models import loading
from egrpo_jax.models.sharding import abstract_sharded_model
from egrpo_jax.policy import is_checkpoint_folder, read_model_config
from egrpo_jax.rl.batch import TrainBatch, bucket_rows, row_length
from egrpo_jax.rl.loop import RLTrainer

STEPS = ("train", "decode", "write")
FIELDS = ("argument", "output", "alias", "temp", "code")
GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """One compiled call's per-device bytes (XLA's memory_analysis) and its compile time."""

    step: str
    argument: int
    output: int
    alias: int  # outputs that reuse a donated argument's buffer (the train state, the KV cache)
    temp: int
    code: int
    compile_s: float
    # the TPU compiler refused the program: its temporaries alone exceed the chip's HBM (`temp` holds the
    # compiler's figure, the other sizes are unknown and 0)
    refused: bool = False
    depths: tuple[int, ...] = ()  # compiled at these depths and extrapolated to the model's (extrapolate)

    @property
    def total(self) -> int:
        """Bytes live at the peak: arguments, outputs not written over a donated argument, temporaries, code."""
        return self.argument + self.output - self.alias + self.temp + self.code

    def fits(self, hbm_bytes: int) -> bool:
        return not self.refused and self.total <= hbm_bytes


def step_memory(step: str, compiled, seconds: float) -> StepMemory:
    m = compiled.memory_analysis()
    return StepMemory(step, int(m.argument_size_in_bytes), int(m.output_size_in_bytes),
                      int(m.alias_size_in_bytes), int(m.temp_size_in_bytes),
                      int(m.generated_code_size_in_bytes), seconds)


def policy_config(cfg, path: str = "") -> ModelConfig:
    """The decoder `egrpo train` builds for `cfg` (assembly.build_policy), read without weights: the
    config.json / GGUF header / policy.json of `path` (default model.path), or model.tiny; with
    model.dtype, param_dtype and remat as load_policy applies them."""
    m = cfg.model
    path = path or m.path
    if not path:
        return model_config(cfg, m.tiny.vocab_size or int(build_tokenizer(cfg).vocab_size))
    if os.path.isdir(path) and is_checkpoint_folder(path):
        base = read_model_config(path)[0]
    else:
        base = loading.load_config(path)
    return base.replace(dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat)


def topology_mesh(cfg, topology: str):
    """cfg's mesh over the chips of a TPU topology ("v5p:2x2x4") that need not be here: libtpu compiles for
    them without a TPU (deviceless ahead-of-time compilation), with the TPU compiler's own buffer assignment."""
    from jax.experimental import topologies

    # v4 shows one device per chip (megacore), as a v4 VM does; later generations do so by default
    kw = {"chip_config_name": "megacore"} if topology.startswith("v4:") else {}
    try:
        devices = topologies.get_topology_desc(topology, "tpu", **kw).devices
    except Exception as e:  # noqa: BLE001 - no libtpu, or a topology it does not know: one line either way
        raise ValueError(f"TPU topology {topology!r}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                         "(a deviceless TPU compile needs libtpu: pip install '.[tpu]')") from None
    m = cfg.mesh
    return make_mesh(m.data, m.fsdp, m.tensor, devices=devices)


# "... the total memory required for HLO temporaries (415.79G) exceeds available HBM (95.74G)."
_TPU_OOM = re.compile(r"Ran out of memory.*?HLO temporaries \(([0-9.]+)([KMGT])\)")


def _refusal(step: str, e: Exception) -> StepMemory:
    """The TPU compiler stops at a program that cannot fit (RESOURCE_EXHAUSTED): that is the answer,
    with its figure for the temporaries; any other error is raised again."""
    m = _TPU_OOM.search(str(e))
    if m is None:
        raise e
    temp = float(m.group(1)) * 1024 ** " KMGT".index(m.group(2))  # read as GiB (it gives v5p 95.74G available)
    return StepMemory(step, 0, 0, 0, int(temp), 0, 0.0, refused=True)


def largest_batch(cfg, row_multiple: int) -> TrainBatch:
    """The largest batch RLTrainer.update packs: every rollout of a step (dynamic sampling keeps at
    most data.batch_size groups), each agent.max_total_tokens long, every token trained."""
    rows = bucket_rows(cfg.data.batch_size * cfg.rl.group_size, row_multiple)
    t = row_length(cfg.agent.max_total_tokens, 16, cfg.agent.max_total_tokens)
    # np.zeros / np.ones of these shapes are host arrays the learner only reads shapes from
    return TrainBatch(tokens=np.zeros((rows, t), np.int32), mask=np.ones((rows, t), np.float32),
                      old_logp=np.zeros((rows, t), np.float32), advantages=np.ones(rows, np.float32),
                      num_real=rows)


def segment_steps(cfg) -> int:
    """The longest decode call's step budget: a segment of agent.max_turn_tokens (or of the whole
    agent.max_total_tokens), cut to agent.segment_steps (agent.loop's budgets and decode blocks)."""
    a = cfg.agent
    span = a.max_turn_tokens or a.max_total_tokens
    return min(span, a.segment_steps) if a.segment_steps else span


def plan_memory(cfg, model_cfg: ModelConfig, mesh, steps: Sequence[str] = STEPS) -> list[StepMemory]:
    """Compile `steps` of `egrpo train` on `cfg` for `model_cfg` over `mesh` and measure each."""
    bad = [s for s in steps if s not in STEPS]
    if bad:
        raise ValueError(f"plan-memory: unknown step {bad[0]!r}; known: {', '.join(STEPS)}")
    # The byte tokenizer stands in for the model's own: the engine's shapes do not depend on it (the stop
    # table is [automaton states of the stop strings, model vocabulary]; EOS ids bucket to >= 4).
    trainer = RLTrainer(cfg, abstract_sharded_model(model_cfg, mesh), ByteTokenizer(), None, mesh)
    learner, engine = trainer.learner, trainer.engine
    engine.reset()
    compile_fn = {
        "train": lambda: learner.lower_step(largest_batch(cfg, learner.row_multiple()), cfg.rl.aggregation,
                                            float(cfg.rl.dr_grpo_norm or 1)).compile(),
        "decode": lambda: engine.compile_decode(segment_steps(cfg)),
        "write": engine.compile_write,
    }
    out = []
    for step in steps:
        t0 = time.perf_counter()
        try:
            mem = step_memory(step, compile_fn[step](), 0.0)
        except Exception as e:  # noqa: BLE001 - only the TPU compiler's out-of-memory refusal is a result
            mem = _refusal(step, e)
        out.append(dataclasses.replace(mem, compile_s=time.perf_counter() - t0))
    return out


def plan_at_depths(cfg, model_cfg: ModelConfig, mesh, steps: Sequence[str] = STEPS,
                   depths: Sequence[int] = ()) -> list[StepMemory]:
    """plan_memory at the model's depth; given `depths`, the train step (minutes to compile per layer
    count: its program grows with layers x attention blocks) at those depths, extrapolated. The rollout
    calls compile in seconds at full depth, and their temporaries (one layer's attention scores) are
    not as close to a line as the train step's: at full depth they are measured, not extrapolated."""
    short = ["train"] if depths and "train" in steps else []
    full = [s for s in steps if s not in short]
    mems = {m.step: m for m in plan_memory(cfg, model_cfg, mesh, full)} if full else {}
    if short:
        runs = {d: plan_memory(cfg, model_cfg.replace(num_layers=d), mesh, short)[0] for d in depths}
        mems["train"] = extrapolate(runs, model_cfg.num_layers)
    return [mems[s] for s in steps]


# Argument and output sizes add up buffer by buffer, so they are exactly affine in depth. Temporaries
# share one heap whose peak XLA packs anew at each depth: it moves by a few bytes off the line (on the
# 7B train step 2, 4, 6 layers lie on it to the MiB; the rollout write misses it by 0.3%), so it
# need only lie within this share of its value.
TEMP_TOLERANCE = 0.01


def extrapolate(by_depth: dict[int, StepMemory], layers: int) -> StepMemory:
    """The step at `layers` layers from compiles at fewer: every layer has the same shapes, so each
    byte count is affine in depth (per-layer parameters, optimizer state, gradients, saved
    activations, KV cache; the embedding, head and one layer's working set do not grow). The line
    goes through the two shallowest depths; a third must lie on it (ValueError if not)."""
    depths = sorted(by_depth)
    if len(depths) < 2:
        raise ValueError(f"plan-memory: extrapolating to {layers} layers needs two compiled depths, got {depths}")
    a, b = depths[0], depths[1]
    values = {}
    for f in FIELDS:
        ys = {d: getattr(by_depth[d], f) for d in depths}
        slope = Fraction(ys[b] - ys[a], b - a)
        tolerance = TEMP_TOLERANCE if f == "temp" else 0
        off = [d for d in depths[2:] if abs(ys[a] + slope * (d - a) - ys[d]) > tolerance * ys[d]]
        if off:
            seen = ", ".join(f"{d} layers: {ys[d]}" for d in depths)
            raise ValueError(f"plan-memory: {by_depth[a].step} {f} bytes are not linear in layers ({seen}); "
                             "compile the full depth (--layers full)")
        values[f] = math.ceil(ys[a] + slope * (layers - a))  # whole bytes, never under
    return StepMemory(by_depth[a].step, **values, compile_s=sum(m.compile_s for m in by_depth.values()),
                      refused=any(m.refused for m in by_depth.values()), depths=tuple(depths))
