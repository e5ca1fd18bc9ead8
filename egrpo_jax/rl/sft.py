"""SFT cold start: demonstration trajectories -> (tokens, loss mask), a resumable demo stream,
and the training loop (masked cross-entropy on model-written tokens only).

Tokenisation mirrors the agent loop exactly: the prompt is `host_text.encode_prompt`, model segments
are encoded on their own, tool segments as the loop encodes a tool response; mask 1 on "model" segments.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from egrpo_jax.agent.host_text import encode_prompt, encode_tool_responses
from egrpo_jax.agent.template import encode, tool_response_body
from egrpo_jax.assembly import build_mesh, build_policy
from egrpo_jax.data.io import DataError, iter_objects
from egrpo_jax.rl.batch import pack_sequences
from egrpo_jax.rl.learner import Learner
from egrpo_jax.rl.run import open_checkpoints, run_steps
from egrpo_jax.rl.setup import loss_settings, optim_settings

log = logging.getLogger(__name__)
ROLES = ("model", "tool")


def check_demo(where: str, d: dict[str, Any]) -> None:
    """Field types of one demo line (DataError naming file:line and the field)."""
    q = d.get("question")
    if not isinstance(q, str) or not q.strip():
        got = "missing" if "question" not in d else f"{type(q).__name__} {repr(q)[:30]}"
        raise DataError(f"{where}: field 'question' must be a non-empty string, got {got}")
    segs = d.get("segments")
    if not isinstance(segs, list) or not segs:
        got = "missing" if "segments" not in d else f"{type(segs).__name__} {repr(segs)[:30]}"
        raise DataError(f"{where}: field 'segments' must be a non-empty list of {{role, text}}, got {got}")
    for j, seg in enumerate(segs):
        if not isinstance(seg, dict) or seg.get("role") not in ROLES or not isinstance(seg.get("text"), str):
            raise DataError(f"{where}: segments[{j}] must have role in {ROLES} and a text string, got {str(seg)[:60]}")
    if not isinstance(d.get("correct", True), bool):
        raise DataError(f"{where}: field 'correct' must be true or false, got {d['correct']!r}")


def tokenize_demo(demo: dict[str, Any], tokenizer, *, prompt_style: str = "full", where: str = "demo") -> tuple[list[int], list[int]]:
    check_demo(where, demo)
    prompt = encode_prompt(tokenizer, demo["question"], style=prompt_style)
    tokens, mask = list(prompt), [0] * len(prompt)
    for j, seg in enumerate(demo["segments"]):
        if seg["role"] == "model":  # the model's own text: its tags are structure
            ids = encode(tokenizer, seg["text"])
        else:  # encoded like the agent loop encodes a tool response (the body is data)
            body = tool_response_body(seg["text"])
            if body is None:
                raise DataError(f"{where}: segments[{j}] (tool) must be a tool response as the host writes it: "
                                "'\\n<tool_response>\\n...\\n</tool_response>\\n'")
            ids = encode_tool_responses(tokenizer, [body])[0]
        tokens += ids
        mask += [1 if seg["role"] == "model" else 0] * len(ids)
    return tokens, mask


def load_demos(path: str, tokenizer, *, prompt_style: str = "full", correct_only: bool = True,
               max_len: int | None = None) -> tuple[list[tuple[list[int], list[int]]], dict[str, int]]:
    """Read the demo JSONL; returns the tokenised demos and counts (kept, wrong_skipped, truncated,
    longest: the longest demo's tokens before any cut)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data.demos {path}: file not found")
    out, stats = [], {"kept": 0, "wrong_skipped": 0, "truncated": 0, "longest": 0}
    for where, d in iter_objects(path):
        check_demo(where, d)
        if correct_only and d.get("correct") is False:
            stats["wrong_skipped"] += 1
            continue
        toks, mask = tokenize_demo(d, tokenizer, prompt_style=prompt_style, where=where)
        stats["longest"] = max(stats["longest"], len(toks))
        if max_len and len(toks) > max_len:
            stats["truncated"] += 1
            toks, mask = toks[:max_len], mask[:max_len]
        out.append((toks, mask))
    stats["kept"] = len(out)
    if not out:
        raise DataError(f"data.demos {path}: no usable demonstrations")
    return out, stats


class DemoStream:
    """Batches of demo indices: a fresh seeded permutation per epoch; JSON state (epoch, position)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < 1 or batch_size < 1:
            raise ValueError(f"DemoStream needs n >= 1 and batch_size >= 1, got {n}, {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.pos = 0, 0

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __next__(self) -> list[int]:
        out: list[int] = []
        while len(out) < self.batch_size:
            perm = self._perm(self.epoch)
            take = perm[self.pos: self.pos + self.batch_size - len(out)]
            out += take.tolist()
            self.pos += len(take)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def get_state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos, "n": self.n, "batch_size": self.batch_size, "seed": self.seed}

    def set_state(self, state: dict[str, int]) -> None:
        for k in ("n", "batch_size", "seed"):
            if state.get(k) != getattr(self, k):
                raise ValueError(f"demo stream state '{k}' is {state.get(k)!r}, this run has {getattr(self, k)!r}")
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])


def run_sft(cfg, *, after_step: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """The `egrpo sft` loop; resumes from checkpoint.dir when checkpoint.resume is set. `after_step(step,
    metrics)` runs after every step (before its checkpoint); an exception from it stops the run."""
    ckpt = open_checkpoints(cfg)
    try:
        if not os.path.isfile(cfg.data.demos):
            raise FileNotFoundError(f"data.demos {cfg.data.demos}: file not found")
        for where, d in iter_objects(cfg.data.demos):  # types first: before a (possibly large) model loads
            check_demo(where, d)
        mesh = build_mesh(cfg)
        model, tok = build_policy(cfg, mesh)
        demos, stats = load_demos(cfg.data.demos, tok, prompt_style=cfg.agent.prompt_style,
                                  correct_only=cfg.data.correct_demos_only, max_len=cfg.train.max_seq_len)
    except BaseException:
        if ckpt is not None:
            ckpt.close()
        raise
    report_demos(cfg, stats)
    learner = Learner(model, mesh, optim_settings(cfg), loss_settings(cfg, "sft"), microbatches=cfg.optim.microbatches)
    stream = DemoStream(len(demos), cfg.data.batch_size, cfg.data.seed)

    def step(_step: int, _rng) -> dict[str, float]:
        idx = next(stream)
        batch = pack_sequences([demos[i][0] for i in idx], [demos[i][1] for i in idx],
                               row_multiple=learner.row_multiple(), max_len=cfg.train.max_seq_len,
                               pack=cfg.train.pack_demos)
        t0 = time.perf_counter()
        m = learner.train_step(batch)
        dt = time.perf_counter() - t0
        real = sum(len(demos[i][0]) for i in idx)
        return dict(m, step_s=dt, tokens_per_s=float(batch.tokens.size) / max(dt, 1e-9),
                    pad_fraction=1.0 - real / batch.tokens.size,
                    **{"data/batch_hash": float(sum((i + 1) * 7919 ** k for k, i in enumerate(idx)) % 1_000_003)},
                    shapes_compiled=float(len(learner.compiled_shapes)))

    # SFT logs into <logging.dir>/sft: a config shared with `egrpo train` keeps the two runs apart
    last = run_steps(cfg, ckpt, learner, stream, step, policy=(model, tok),
                     log_dir=os.path.join(cfg.logging.dir, "sft") if cfg.logging.dir else "", desc="sft",
                     shown={"loss": "loss", "tokens/s": "tokens_per_s"}, after_step=after_step)
    return dict(last, **{f"demos/{k}": float(v) for k, v in stats.items()})


def report_demos(cfg, stats: dict[str, int]) -> None:
    """Before the first step, loudly: how many demos are cut to train.max_seq_len (a cut demo loses its
    end, usually the answer, so the policy never sees a rollout finish)."""
    if stats["truncated"]:
        log.warning("sft: %d of %d demos are longer than train.max_seq_len = %d tokens and are cut to it (longest "
                    "%d tokens): raise train.max_seq_len or shorten the demos (fewer hops, smaller search.topk)",
                    stats["truncated"], stats["kept"], cfg.train.max_seq_len, stats["longest"])
