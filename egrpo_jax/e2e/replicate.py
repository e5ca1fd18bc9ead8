"""`egrpo replicate`: GRPO (alpha = 0) vs E-GRPO (alpha > 0) from one SFT checkpoint, over seeds.

Every (alpha, seed) run starts from the same SFT params and sees the same questions in the same
order and the same sampling seeds (data.seed = train.seed = seed), so alphas are compared on
paired runs with equal steps and compute. Each run is evaluated on the held-out test split.
`aggregate` turns the run folders into the report: mean and spread over seeds of Pass@1,
Pass@3, tool calls per rollout (eval, and over training), and the entity/accuracy correlation.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egrpo_jax.e2e.settings import PipelineConfig

RUN_SUMMARY = "run.json"  # per (alpha, seed) run: eval summary + training metrics rows + settings
COMPARE_KEYS = ("pass@1", "pass@3", "tool_calls/mean", "train/tool_calls", "train/accuracy",
                "entity_match/correct", "entity_match/wrong", "entity_corr")
CURVES = (("tool_calls/per_rollout", "tool calls per rollout"), ("accuracy", "training accuracy"),
          ("reward/mean", "reward"), ("entity_match/all", "entity match"))


def label(alpha: float) -> str:
    return "GRPO (alpha=0)" if alpha == 0 else f"E-GRPO (alpha={alpha:g})"


def run_name(alpha: float, seed: int) -> str:
    return f"alpha{alpha:g}_seed{seed}"


def match_accuracy_corr(rollouts: Sequence[Mapping]) -> float | None:
    """Pearson correlation of a rollout's entity match rate with its correctness (0/1)."""
    pairs = [(r["match_rate"], float(r["correct"])) for r in rollouts if r.get("match_rate") is not None]
    if len(pairs) < 2:
        return None
    x, y = np.asarray(pairs, np.float64).T
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def run_record(eval_dir: str, training_rows: Sequence[Mapping], *, alpha: float, seed: int) -> dict:
    """The run's eval summary plus training aggregates (mean over steps) and the correlation."""
    from egrpo_jax.eval.report import ROLLOUTS_FILE, load_summary

    summary = load_summary(eval_dir)
    with open(os.path.join(eval_dir, ROLLOUTS_FILE), encoding="utf-8") as f:
        rollouts = [json.loads(line) for line in f if line.strip()]
    summary["entity_corr"] = match_accuracy_corr(rollouts)
    for key, name in (("tool_calls/per_rollout", "train/tool_calls"), ("accuracy", "train/accuracy")):
        vals = [r[key] for r in training_rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        summary[name] = float(np.mean(vals)) if vals else None
    return {"alpha": alpha, "seed": seed, "summary": summary, "training": list(training_rows)}


def run_replicate(pc: PipelineConfig, out_dir: str, *, alphas: Sequence[float], seeds: Sequence[int],
                  progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """SFT once, evaluate it, then one RL run + evaluation per (alpha, seed); returns the aggregate."""
    from egrpo_jax.data.io import load_questions
    from egrpo_jax.e2e.data import build_data, existing_data
    from egrpo_jax.e2e.pipeline import (
        Timer,
        evaluate_policy,
        load_policy,
        open_tools,
        quiet_tensorboard,
        run_configs,
        sft,
        tokenizer_vocab,
        train_rl,
    )
    from egrpo_jax.metrics_log import read_metrics

    quiet_tensorboard()
    timer = Timer(log)
    s = pc.pipeline
    data_dir = os.path.join(out_dir, "data")
    data = existing_data(data_dir)  # a resumed replicate keeps its data (the SFT checkpoint depends on it)
    if data is None:
        with timer.phase("data"):
            data = build_data(s, data_dir)
    sft_cfg, base = run_configs(pc, data, out_dir, tokenizer_vocab=tokenizer_vocab(data))
    sft_cfg.logging.progress = base.logging.progress = progress
    if os.path.isdir(sft_cfg.checkpoint.dir):  # resume a replicate: the SFT checkpoint is shared
        log(f"   reusing the SFT checkpoint in {sft_cfg.checkpoint.dir}")
    else:
        with timer.phase("sft"):
            sft(sft_cfg)
    test, train = load_questions(data.test), load_questions(data.train)
    sft_eval = os.path.join(out_dir, "eval_sft")
    if not os.path.isfile(os.path.join(sft_eval, "summary.json")):
        with timer.phase("eval SFT"):
            _, model, tok = load_policy(base)
            with open_tools(base, tok) as tools:
                evaluate_policy(model, tok, tools, test, base, s, sft_eval, title="SFT policy", progress=progress)
    records = [run_record(sft_eval, [], alpha=-1.0, seed=-1)]
    for seed in seeds:
        for alpha in alphas:
            name = run_name(alpha, seed)
            run_dir = os.path.join(out_dir, "runs", name)
            done = os.path.join(run_dir, RUN_SUMMARY)
            if os.path.isfile(done):  # finished earlier: keep it (runs are deterministic per seed)
                with open(done, encoding="utf-8") as f:
                    records.append(json.load(f))
                continue
            cfg = copy.deepcopy(base)
            cfg.rl.alpha, cfg.train.seed, cfg.data.seed = float(alpha), int(seed), int(seed)
            cfg.checkpoint.dir = os.path.join(run_dir, "ckpt")
            cfg.logging.dir = os.path.join(run_dir, "logs")
            if os.path.isdir(cfg.logging.dir):  # an interrupted run: start it again from the SFT params
                import shutil

                shutil.rmtree(run_dir)
            with timer.phase(f"{name}: train {cfg.train.steps} steps + eval"):
                mesh, model, tok = load_policy(cfg)
                with open_tools(cfg, tok) as tools:
                    train_rl(cfg, model, tok, tools, mesh, train)
                    rows = read_metrics(cfg.logging.dir)
                    evaluate_policy(model, tok, tools, test, cfg, s, os.path.join(run_dir, "eval"),
                                    title=f"{label(alpha)}, seed {seed}", training_rows=rows, progress=progress)
            rec = run_record(os.path.join(run_dir, "eval"), rows, alpha=float(alpha), seed=int(seed))
            with open(done, "w", encoding="utf-8") as f:
                json.dump(rec, f, default=float)
            records.append(rec)
    return {"records": records, "timings_s": timer.seconds, "data": data.stats,
            "settings": {"alphas": list(alphas), "seeds": list(seeds), "rl_steps": base.train.steps,
                         "sft_steps": sft_cfg.train.steps, "group_size": base.rl.group_size,
                         "questions_per_step": base.data.batch_size, "eval_k": s.eval_k,
                         "eval_questions": s.eval_questions or data.stats["questions/test"]}}


def aggregate(records: Sequence[Mapping], out_dir: str | Path, *, title: str = "GRPO vs E-GRPO",
              notes: Sequence[str] = ()) -> Path:
    """report.md + summary.json + plots/*.png from run records (alpha -1 = the SFT baseline)."""
    from egrpo_jax.eval.analysis import plot_grouped_curves
    from egrpo_jax.eval.report import comparison_table

    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[Mapping]] = {}
    alphas = sorted({float(r["alpha"]) for r in records})
    for a in alphas:
        groups["SFT (no RL)" if a < 0 else label(a)] = [r for r in records if float(r["alpha"]) == a]
    table = comparison_table({k: [r["summary"] for r in v] for k, v in groups.items()}, COMPARE_KEYS)
    rl_groups = {k: [r["training"] for r in v] for k, v in groups.items() if v[0]["alpha"] >= 0}
    plots = {}
    for key, name in CURVES:
        fname = key.replace("/", "_") + ".png"
        plots[name] = plot_grouped_curves(rl_groups, key, out / "plots" / fname, ylabel=name).relative_to(out)
    paired = _paired_differences(records)
    entity = _entity_counts(groups)
    columns = ("Columns: Pass@1 / Pass@3 / tool calls per rollout / entity match of correct and wrong rollouts on "
               "the test split after training; `train/tool_calls` and `train/accuracy` are means over all training "
               "steps; `entity_corr` is the Pearson correlation of a rollout's entity match rate with its "
               "correctness.")
    lines = [f"# {title}", "", *notes, "", "## Held-out test set (mean ± std over seeds)", "", table, columns, "",
             "## Paired differences vs GRPO (same seed)", ""]
    lines += paired or ["(no GRPO runs to compare with)"]
    header = "| run | questions where correct rollouts match more entities | ... wrong rollouts match more |"
    lines += ["", "## Entity analysis (summed over seeds)", "", header, "|---|---|---|"]
    lines += [f"| {k} | {a} | {b} |" for k, (a, b) in entity.items()]
    lines += ["", "## Training curves (mean ± std over seeds)", ""]
    lines += [f"![{name}]({p.as_posix()})" for name, p in plots.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(
        {"groups": {k: [r["summary"] for r in v] for k, v in groups.items()}, "paired": paired,
         "entity_counts": entity}, indent=2, default=float, sort_keys=True) + "\n")
    return out / "report.md"


def _paired_differences(records: Sequence[Mapping]) -> list[str]:
    base = {r["seed"]: r["summary"] for r in records if r["alpha"] == 0}
    if not base:
        return []
    lines = ["| run | seeds | Δ Pass@1 (points) | Δ Pass@3 (points) | Δ train tool calls |", "|---|---|---|---|---|"]
    for a in sorted({r["alpha"] for r in records if r["alpha"] > 0}):
        d1, d3, dt = [], [], []
        for r in records:
            if r["alpha"] == a and r["seed"] in base:
                b = base[r["seed"]]
                d1.append(100 * (r["summary"]["pass@1"] - b["pass@1"]))
                d3.append(100 * ((r["summary"].get("pass@3") or 0) - (b.get("pass@3") or 0)))
                if r["summary"].get("train/tool_calls") is not None and b.get("train/tool_calls") is not None:
                    dt.append(r["summary"]["train/tool_calls"] - b["train/tool_calls"])
        lines.append(f"| {label(a)} | {len(d1)} | {_ms(d1)} | {_ms(d3)} | {_ms(dt, 3)} |")
    return lines


def _ms(xs: Sequence[float], digits: int = 1) -> str:
    if not xs:
        return "n/a"
    sd = float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0
    return f"{np.mean(xs):+.{digits}f} ± {sd:.{digits}f}"


def _entity_counts(groups: Mapping[str, Sequence[Mapping]]) -> dict[str, tuple[int, int]]:
    out = {}
    for k, runs in groups.items():
        comps = [r["summary"].get("entity_comparison") or {} for r in runs]
        out[k] = (sum(c.get("correct_higher", 0) for c in comps), sum(c.get("wrong_higher", 0) for c in comps))
    return out
