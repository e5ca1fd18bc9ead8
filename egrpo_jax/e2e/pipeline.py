"""The shared end-to-end pipeline: data -> SFT -> eval -> RL -> eval -> before/after table.

Each phase is a function so `egrpo replicate` can reuse them (one SFT, many RL runs). Every phase
is timed; timings land in the run's summary.json next to the metrics.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
from flax import nnx
from tqdm import tqdm

from egrpo_jax import compile_cache
from egrpo_jax import config as C
from egrpo_jax.assembly import build_mesh, build_policy, build_tools, tool_config
from egrpo_jax.data.io import load_questions
from egrpo_jax.datagen.real.folder import build_real_data
from egrpo_jax.datagen.synth.build import BpeSettings, DataPaths, build_data
from egrpo_jax.e2e.settings import PipelineConfig, PipelineSettings
from egrpo_jax.eval.report import format_value, lookup
from egrpo_jax.eval.runner import evaluate_to_report
from egrpo_jax.metrics_log import read_metrics
from egrpo_jax.models.tokenizer_io import load_tokenizer
from egrpo_jax.rl.loop import run_train
from egrpo_jax.rl.sft import run_sft

SFT_SAVE_EVERY = 100  # SFT steps between checkpoints (the last checkpoint.keep of them stay)

# Rows of the before/after table: (summary key, label).
TABLE_KEYS = (
    ("pass@1", "Pass@1"),
    ("pass@3", "Pass@3"),
    ("tool_calls/mean", "tool calls / rollout"),
    ("entity_match/correct", "entity match (correct)"),
    ("entity_match/wrong", "entity match (wrong)"),
    ("format_error_rate", "format errors"),
)


class Timer:
    """Wall time per named phase, in order."""

    def __init__(self, log: Callable[[str], None] = print):
        self.seconds: dict[str, float] = {}
        self.compile_s: dict[str, float] = {}  # of each phase's wall time, spent compiling
        self.log = log

    @contextlib.contextmanager
    def phase(self, name: str):
        self.log(f"== {name}")
        t0, c0 = time.perf_counter(), compile_cache.compile_seconds()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 2)
            self.compile_s[name] = round(compile_cache.compile_seconds() - c0, 2)
            self.log(f"== {name}: {self.seconds[name]:.1f} s ({self.compile_s[name]:.1f} s compiling)")


def build_pipeline_data(s: PipelineSettings, out_dir: str, *, tokenizer: bool = True) -> DataPaths:
    """The pipeline's data folder (world, demos and tools of its settings; a BPE unless the policy
    brings its own tokenizer). The real-world set has no BPE: its policy brings the tokenizer."""
    if s.real is not None:
        if tokenizer:
            raise ValueError("the real-world set trains a pretrained policy, which brings its tokenizer: set "
                             "pipeline.model or pass --model PATH (HF folder or .gguf)")
        return build_real_data(out_dir, s.real, s.demos, s.tools)
    bpe = BpeSettings(s.vocab_size, s.atomic_prompt) if tokenizer else None
    return build_data(out_dir, s.world, s.demos, s.tools, bpe=bpe)


def run_configs(pc: PipelineConfig, data: DataPaths, out_dir: str, *, model_path: str = "",
                tokenizer_vocab: int | None = None):
    """(sft_cfg, rl_cfg): the config files' runs with this run folder's data, tokenizer and paths."""
    s = pc.pipeline
    out = []
    for name, base in (("sft", pc.sft), ("rl", pc.rl)):
        cfg = copy.deepcopy(base)
        cfg.data.questions = data.rl_questions if name == "rl" else data.train
        cfg.data.corpus, cfg.data.demos = data.corpus, data.demos
        cfg.search.backend, cfg.search.index_dir = "bm25", data.index
        cfg.search.topk, cfg.search.snippet_chars, cfg.search.page_tokens = (
            s.tools.topk, s.tools.snippet_chars, s.tools.page_tokens)
        if model_path:
            cfg.model.path, cfg.model.tokenizer = model_path, ""
        else:
            cfg.model.path, cfg.model.tokenizer = "", data.tokenizer
            cfg.model.tiny.vocab_size = int(tokenizer_vocab)
        cfg.checkpoint.dir = os.path.join(out_dir, name, "ckpt")
        # RL runs are short: the final step only. The cold start (replicate's takes half an hour) saves as it
        # goes, so a stopped `egrpo replicate` continues it (replicate.sft_start) instead of starting over
        cfg.checkpoint.every = min(cfg.train.steps, SFT_SAVE_EVERY) if name == "sft" else cfg.train.steps
        cfg.checkpoint.resume = False
        cfg.checkpoint.init_from = os.path.join(out_dir, "sft", "ckpt") if name == "rl" else ""
        cfg.logging.dir = os.path.join(out_dir, name, "logs")
        # the pipeline's evaluation settings are the run's eval.* keys (what `egrpo eval` reads)
        cfg.eval.k, cfg.eval.temperature, cfg.eval.top_p = s.eval_k, s.eval_temperature, s.eval_top_p
        cfg.eval.batch_size, cfg.eval.seed, cfg.eval.limit = s.eval_batch, s.eval_seed, s.eval_questions
        C.validate(cfg)
        if tool_config(cfg) != dataclasses.replace(s.tools, enabled=tool_config(cfg).enabled):
            raise C.ConfigError(f"search.* of the run differs from the pipeline's tools {s.tools}")
        out.append(cfg)
    return out[0], out[1]


def tokenizer_vocab(data: DataPaths) -> int:
    return load_tokenizer(data.tokenizer).vocab_size


def load_policy(cfg):
    """(mesh, model, tokenizer) of cfg, with checkpoint.init_from's params."""
    mesh = build_mesh(cfg)
    model, tok = build_policy(cfg, mesh, init_from=cfg.checkpoint.init_from)
    return mesh, model, tok


def evaluate_policy(model, tok, tools, records, cfg, out_dir: str, *, title: str,
                    training_rows: Sequence[Mapping] | None = None, progress: bool = True,
                    meta: Mapping | None = None) -> dict:
    """k sampled rollouts per held-out question (cfg.eval.*, set from `settings` by run_configs) ->
    report folder; returns its summary."""
    n = len(list(records)[: cfg.eval.limit or None]) * cfg.eval.k
    bar = tqdm(total=n, desc=f"eval {title}", unit="rollout", disable=not progress, dynamic_ncols=True)
    seen = [0, 0]

    def on_question(_i, _trajs, scores):
        seen[0] += sum(s.correct for s in scores)
        seen[1] += len(scores)
        bar.set_postfix(acc=f"{seen[0] / max(seen[1], 1):.2f}", refresh=False)

    try:
        return evaluate_to_report(cfg, model, tok, records, tools, out_dir, title=title, meta=dict(meta or {}),
                                  training_rows=training_rows, on_question=on_question, on_progress=bar.update)
    finally:
        bar.close()


def before_after_table(before: Mapping, after: Mapping, *, names: tuple[str, str] = ("SFT", "SFT + E-GRPO"),
                       training: Sequence[Mapping] = ()) -> str:
    """Markdown table, one metric per row (values from the two summaries); with `training` (the RL
    metrics rows) also the training reward at the first and the last RL step."""
    lines = [f"| metric | {names[0]} | {names[1]} |", "|---|---|---|"]
    rewards = [r["reward/mean"] for r in training if r.get("reward/mean") is not None]
    if rewards:
        lines.append(f"| training reward (first / last RL step) | {rewards[0]:.3f} | {rewards[-1]:.3f} |")
    for key, label in TABLE_KEYS:
        a, b = lookup(before, key), lookup(after, key)
        if a is None and b is None:
            continue
        lines.append(f"| {label} | {format_value(key, a)} | {format_value(key, b)} |")
    for summ_key, label in (("entity_comparison.correct_higher", "questions: correct rollouts match more entities"),
                            ("entity_comparison.wrong_higher", "questions: wrong rollouts match more entities")):
        lines.append(f"| {label} | {lookup(before, summ_key)} | {lookup(after, summ_key)} |")
    return "\n".join(lines) + "\n"


def run_pipeline(pc: PipelineConfig, out_dir: str, *, model_path: str = "", progress: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole demo; writes <out>/{data,sft,rl,eval_sft,eval_rl}/ and <out>/report.md."""
    if os.path.exists(os.path.join(out_dir, "sft", "ckpt")):
        raise FileExistsError(f"{out_dir}: already holds a run (sft/ckpt); choose another --out or remove it")
    s = pc.pipeline
    model_path = model_path or s.model
    if s.real is not None and not model_path:
        raise ValueError(f"{pc.source}: the real-world demo trains a pretrained policy: pass --model PATH "
                         "(HF folder or .gguf) or set get_pipeline().model")
    quiet_tensorboard()
    timer = Timer(log)
    what = "real-world questions, corpus, bm25 index, oracle demos" if s.real is not None else \
        "world, corpus, demos, tokenizer, bm25 index"
    with timer.phase(f"data: {what}"):
        data = build_pipeline_data(s, os.path.join(out_dir, "data"), tokenizer=not model_path)
        log("   " + ", ".join(f"{k}={v}" for k, v in data.stats.items()))
    vocab = None if model_path else tokenizer_vocab(data)
    sft_cfg, rl_cfg = run_configs(pc, data, out_dir, model_path=model_path, tokenizer_vocab=vocab)
    for c in (sft_cfg, rl_cfg):
        c.logging.progress = progress
    with timer.phase("sft: cold start on the demos"):
        sft_m = run_sft(sft_cfg)
    with timer.phase("load policy + tools"):
        mesh, model, tok = load_policy(rl_cfg)
        tools = build_tools(rl_cfg, tok)
        test = load_questions(data.test)
        rl_pool = load_questions(rl_cfg.data.questions)
    params = _param_count(model)
    log(f"   policy: {params / 1e6:.2f}M params, vocab {model.cfg.vocab_size}")
    meta = {"policy": model_path or f"tiny {model.cfg.family}, {params / 1e6:.2f}M params"}
    try:
        with timer.phase("eval before RL (SFT policy)"):
            before = evaluate_policy(model, tok, tools, test, rl_cfg, os.path.join(out_dir, "eval_sft"),
                                     title="SFT policy", progress=progress, meta=meta)
        with timer.phase(f"rl: {'GRPO' if rl_cfg.rl.alpha == 0 else 'E-GRPO'} alpha={rl_cfg.rl.alpha}, "
                         f"{rl_cfg.train.steps} steps"):
            rl_m = run_train(rl_cfg, model=model, tokenizer=tok, tools=tools, records=rl_pool, mesh=mesh)
        rows = read_metrics(rl_cfg.logging.dir)
        with timer.phase("eval after RL"):
            after = evaluate_policy(model, tok, tools, test, rl_cfg, os.path.join(out_dir, "eval_rl"),
                                    title="SFT + RL policy", training_rows=rows, progress=progress, meta=meta)
    finally:
        tools.close()
    rl_name = "SFT + GRPO" if rl_cfg.rl.alpha == 0 else f"SFT + E-GRPO (alpha={rl_cfg.rl.alpha})"
    gain = paired_gain(os.path.join(out_dir, "eval_sft"), os.path.join(out_dir, "eval_rl"), s.eval_k)
    table = before_after_table(before, after, names=("SFT", rl_name), training=rows)
    table += "\n" + gain_line(gain, rl_name) + "\n"
    rewards = [r.get("reward/mean") for r in rows]
    result = {"timings_s": timer.seconds, "compile_s": timer.compile_s, "data": data.stats, "sft": sft_m, "rl_last_step": rl_m,
              "train_reward": {"first": rewards[0] if rewards else None, "last": rewards[-1] if rewards else None},
              "before": _headline(before), "after": _headline(after), "rl_minus_sft": gain, "table": table,
              "params": params}
    _write_report(out_dir, pc, result)
    return result


def paired_gain(before_dir: str, after_dir: str, k: int) -> dict[str, dict]:
    """After minus before on the same questions: Pass@1 and Pass@k differences with a 95% bootstrap
    interval over questions (eval/stats.py), from the two report folders' rollouts.jsonl."""
    import dataclasses

    from egrpo_jax.eval.report import ROLLOUTS_FILE
    from egrpo_jax.eval.stats import paired_bootstrap, per_question, score_matrix

    runs = []
    for d in (before_dir, after_dir):
        with open(os.path.join(d, ROLLOUTS_FILE), encoding="utf-8") as f:
            runs.append(per_question(json.loads(line) for line in f if line.strip()))
    questions = sorted(runs[0])
    out = {}
    for which, name in ((0, "pass@1"), (1, f"pass@{k}")):
        a, b = (score_matrix([r], questions, which) for r in (runs[1], runs[0]))
        out[name] = dataclasses.asdict(paired_bootstrap(a, b))
    return out


def gain_line(gain: Mapping[str, Mapping], name: str) -> str:
    """'SFT + GRPO minus SFT, paired over 173 questions (95% CI): Pass@1 +8.1 [+3.2, +12.9] points; ...'"""
    from egrpo_jax.eval.stats import PairedDiff

    parts = [f"{k.replace('pass', 'Pass')} {PairedDiff(**v).points()} points" for k, v in gain.items()]
    n = next(iter(gain.values()))["questions"]
    return f"{name} minus SFT, paired over the same {n} questions (95% bootstrap CI): " + "; ".join(parts) + "."


def quiet_tensorboard() -> None:
    """tensorboardX warns on every NaN scalar (e.g. entity match of correct rollouts when none is correct)."""
    logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)


def _param_count(model) -> int:
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def _headline(summary: Mapping) -> dict:
    keys = [k for k, _ in TABLE_KEYS] + ["accuracy", "questions", "rollouts", "time/eval_s",
                                         "entity_comparison.correct_higher", "entity_comparison.wrong_higher"]
    return {k: lookup(summary, k) for k in keys}


def _write_report(out_dir: str, pc: PipelineConfig, result: Mapping) -> None:
    lines = ["# egrpo demo", "", f"Config: `{pc.source}`", "", "## Before / after RL (held-out test questions)", "",
             result["table"], "", "Reports: [SFT policy](eval_sft/report.md), [after RL](eval_rl/report.md).", "",
             "## Timings", "", "| phase | seconds | of which compiling |", "|---|---|---|"]
    compiling = result.get("compile_s", {})
    lines += [f"| {k} | {v:.1f} | {compiling.get(k, 0.0):.1f} |" for k, v in result["timings_s"].items()]
    total, total_c = sum(result["timings_s"].values()), sum(compiling.values())
    lines.append(f"| total | {total:.1f} | {total_c:.1f} ({total_c / max(total, 1e-9):.0%}) |")
    lines += ["", "## Data", "", "| item | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result["data"].items()]
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out_dir, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=float)
