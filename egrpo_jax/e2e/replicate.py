"""`egrpo replicate`: GRPO (alpha = 0) vs E-GRPO arms from one SFT checkpoint, over seeds.

Every (arm, seed) run starts from the same SFT params and sees the same questions in the same
order and the same sampling seeds (data.seed = train.seed = seed), so arms are compared on paired
runs with equal steps and compute. Each run is evaluated on the held-out test split. `aggregate`
turns the run records into the report: mean ± std over seeds, paired 95% bootstrap intervals over
questions (eval.stats) against GRPO and against the SFT start, tool calls per rollout over
training, the entity-match analysis and the alpha curve, and which of the paper's claims hold.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egrpo_jax.assembly import build_tools
from egrpo_jax.data.io import load_questions
from egrpo_jax.datagen.synth.build import existing_data
from egrpo_jax.e2e.pipeline import (
    Timer,
    build_pipeline_data,
    evaluate_policy,
    load_policy,
    quiet_tensorboard,
    run_configs,
    tokenizer_vocab,
)
from egrpo_jax.e2e.settings import PipelineConfig
from egrpo_jax.eval.analysis import plot_errorbars, plot_grouped_curves
from egrpo_jax.rl.loop import run_train
from egrpo_jax.rl.sft import run_sft
from egrpo_jax.eval.report import ROLLOUTS_FILE, comparison_table, load_summary
from egrpo_jax.eval.stats import paired_bootstrap, per_question, score_matrix
from egrpo_jax.metrics_log import read_metrics

RUN_SUMMARY = "run.json"  # per (arm, seed) run: eval summary + training metrics rows + per-question scores
RUN_MARKER = ".egrpo-replicate-run"  # written first into every run folder replicate creates
SFT_LABEL = "SFT (no RL)"
COMPARE_KEYS = ("pass@1", "pass@3", "tool_calls/mean", "train/tool_calls", "train/accuracy",
                "entity_match/correct", "entity_match/wrong", "near_miss/wrong_rate", "tool_calls/std", "entity_corr")
CURVES = (("tool_calls/per_rollout", "tool calls per rollout"), ("accuracy", "training accuracy"),
          ("reward/mean", "reward"), ("entity_match/all", "entity match"))


@dataclasses.dataclass(frozen=True)
class Arm:
    """One RL setting: E-GRPO's alpha, constant or decaying linearly to 0 over the run (paper's ablation)."""

    alpha: float
    schedule: str = "constant"  # constant | linear

    @property
    def label(self) -> str:
        if self.schedule == "linear":
            return f"E-GRPO (alpha {self.alpha:g} -> 0)"
        return "GRPO (alpha=0)" if self.alpha == 0 else f"E-GRPO (alpha={self.alpha:g})"

    @property
    def name(self) -> str:
        return f"alpha{self.alpha:g}" + ("-decay" if self.schedule == "linear" else "")


GRPO = Arm(0.0)
PAPER_ARMS = (GRPO, Arm(0.1), Arm(0.3), Arm(0.5), Arm(0.3, "linear"))
QUICK_ARMS = (GRPO, Arm(0.3))


def label(alpha: float) -> str:
    return Arm(alpha).label


def run_name(arm: Arm, seed: int) -> str:
    return f"{arm.name}_seed{seed}"


def match_accuracy_corr(rollouts: Sequence[Mapping]) -> float | None:
    """Pearson correlation of a rollout's entity match rate with its correctness (0/1)."""
    pairs = [(r["match_rate"], float(r["correct"])) for r in rollouts if r.get("match_rate") is not None]
    if len(pairs) < 2:
        return None
    x, y = np.asarray(pairs, np.float64).T
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def run_record(eval_dir: str, training_rows: Sequence[Mapping], *, arm: Arm | None, seed: int) -> dict:
    """The run's eval summary, training aggregates (mean over steps), correlation and per-question scores.
    `arm` None is the SFT start."""
    summary = load_summary(eval_dir)
    with open(os.path.join(eval_dir, ROLLOUTS_FILE), encoding="utf-8") as f:
        rollouts = [json.loads(line) for line in f if line.strip()]
    summary["entity_corr"] = match_accuracy_corr(rollouts)
    for key, name in (("tool_calls/per_rollout", "train/tool_calls"), ("accuracy", "train/accuracy")):
        vals = [r[key] for r in training_rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        summary[name] = float(np.mean(vals)) if vals else None
    return {"arm": arm.label if arm else SFT_LABEL, "alpha": arm.alpha if arm else -1.0,
            "schedule": arm.schedule if arm else "", "seed": seed, "summary": summary,
            "training": list(training_rows), "per_question": per_question(rollouts)}


def run_replicate(pc: PipelineConfig, out_dir: str, *, arms: Sequence[Arm], seeds: Sequence[int],
                  progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """SFT once, evaluate it, then one RL run + evaluation per (arm, seed); returns the run records.

    Finished runs are kept (runs are deterministic per seed), so running again resumes. A run folder
    without this command's marker is someone else's: replicate stops rather than delete it.
    """
    quiet_tensorboard()
    timer = Timer(log)
    s = pc.pipeline
    data_dir = os.path.join(out_dir, "data")
    data = existing_data(data_dir)  # a resumed replicate keeps its data (the SFT checkpoint depends on it)
    if data is None:
        with timer.phase("data"):
            data = build_pipeline_data(s, data_dir)
    sft_cfg, base = run_configs(pc, data, out_dir, tokenizer_vocab=tokenizer_vocab(data))
    sft_cfg.logging.progress = base.logging.progress = progress
    if os.path.isdir(sft_cfg.checkpoint.dir):  # resume a replicate: the SFT checkpoint is shared
        log(f"   reusing the SFT checkpoint in {sft_cfg.checkpoint.dir}")
    else:
        with timer.phase("sft"):
            run_sft(sft_cfg)
    test, rl_pool = load_questions(data.test), load_questions(base.data.questions)
    sft_eval = os.path.join(out_dir, "eval_sft")
    if not os.path.isfile(os.path.join(sft_eval, "summary.json")):
        with timer.phase("eval SFT"):
            _, model, tok = load_policy(base)
            with build_tools(base, tok) as tools:
                evaluate_policy(model, tok, tools, test, base, sft_eval, title="SFT policy", progress=progress)
    n_questions = len(test[: base.eval.limit or None])
    records = [_reused(run_record(sft_eval, [], arm=None, seed=-1), sft_eval, None, 0, n_questions)]
    for seed in seeds:
        for arm in arms:
            name = run_name(arm, seed)
            run_dir = os.path.join(out_dir, "runs", name)
            done = os.path.join(run_dir, RUN_SUMMARY)
            if os.path.isfile(done):
                with open(done, encoding="utf-8") as f:
                    records.append(_reused(json.load(f), run_dir, arm, base.train.steps, n_questions))
                continue
            _fresh_run_dir(run_dir)
            cfg = copy.deepcopy(base)
            cfg.rl.alpha, cfg.train.seed, cfg.data.seed = float(arm.alpha), int(seed), int(seed)
            cfg.rl.alpha_schedule = arm.schedule
            if arm.schedule == "linear":
                cfg.rl.alpha_final, cfg.rl.alpha_decay_steps = 0.0, int(cfg.train.steps)
            cfg.checkpoint.dir = os.path.join(run_dir, "ckpt")
            cfg.logging.dir = os.path.join(run_dir, "logs")
            with timer.phase(f"{name}: train {cfg.train.steps} steps + eval"):
                mesh, model, tok = load_policy(cfg)
                with build_tools(cfg, tok) as tools:
                    run_train(cfg, model=model, tokenizer=tok, tools=tools, records=rl_pool, mesh=mesh)
                    rows = read_metrics(cfg.logging.dir)
                    evaluate_policy(model, tok, tools, test, cfg, os.path.join(run_dir, "eval"),
                                    title=f"{arm.label}, seed {seed}", training_rows=rows, progress=progress)
            rec = run_record(os.path.join(run_dir, "eval"), rows, arm=arm, seed=int(seed))
            with open(done, "w", encoding="utf-8") as f:
                json.dump(rec, f, default=float)
            records.append(rec)
    return {"records": records, "timings_s": timer.seconds, "data": data.stats,
            "settings": {"arms": [a.label for a in arms], "seeds": list(seeds), "rl_steps": base.train.steps,
                         "sft_steps": sft_cfg.train.steps, "group_size": base.rl.group_size,
                         "questions_per_step": base.data.batch_size, "eval_k": s.eval_k,
                         "eval_questions": s.eval_questions or data.stats["questions/test"]}}


def _reused(record: Mapping, where: str, arm: Arm | None, steps: int, questions: int) -> Mapping:
    """A finished run kept from an earlier call, if it is the run this call asks for; a run of other
    steps, arm or question count would mix into the report unnoticed, so it is an error instead."""
    got = (len(record["training"]), len(record["per_question"]), record["alpha"], record["schedule"])
    want = (steps, questions, arm.alpha if arm else -1.0, arm.schedule if arm else "")
    if got != want:
        raise ValueError(f"{where}: a finished run of {got[0]} RL steps, {got[1]} questions, alpha {got[2]} "
                         f"{got[3] or '(SFT)'}; this call asks {want[0]} steps, {want[1]} questions, alpha {want[2]} "
                         f"{want[3] or '(SFT)'}: choose another --out or move it away")
    return record


def _fresh_run_dir(run_dir: str) -> None:
    """An empty run folder with the marker; an interrupted run of ours is started again from the SFT
    params, a folder of anyone else's is left alone (error)."""
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        if not os.path.isfile(os.path.join(run_dir, RUN_MARKER)):
            raise FileExistsError(f"{run_dir}: exists and was not created by egrpo replicate; move it or "
                                  "choose another --out")
        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    Path(run_dir, RUN_MARKER).write_text("created by egrpo replicate\n")


def aggregate(records: Sequence[Mapping], out_dir: str | Path, *, title: str = "GRPO vs E-GRPO",
              notes: Sequence[str] = ()) -> Path:
    """report.md + summary.json + plots/*.png from run records (the SFT start has arm SFT_LABEL)."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[Mapping]] = {}
    for r in sorted(records, key=lambda r: (r["alpha"] >= 0, r.get("schedule") == "linear", r["alpha"])):
        groups.setdefault(r["arm"], []).append(r)
    table = comparison_table({k: [r["summary"] for r in v] for k, v in groups.items()}, COMPARE_KEYS)
    rl_groups = {k: [r["training"] for r in v] for k, v in groups.items() if k != SFT_LABEL}
    plots = {}
    for key, name in CURVES:
        fname = key.replace("/", "_") + ".png"
        plots[name] = plot_grouped_curves(rl_groups, key, out / "plots" / fname, ylabel=name).relative_to(out)
    paired = paired_table(groups)
    curve = _alpha_curve(groups, out / "plots" / "alpha_curve.png")
    if curve is not None:
        plots["Pass@1 vs alpha"] = curve.relative_to(out)
    entity = _entity_counts(groups)
    columns = ("Columns: Pass@1 / Pass@3 / tool calls per rollout / entity match of correct and wrong rollouts on "
               "the test split after training; `train/tool_calls` and `train/accuracy` are means over all training "
               "steps; `near_miss/wrong_rate` is the fraction of wrong rollouts that match at least half the gold entities "
               "(what E-GRPO's partial reward can rank); `tool_calls/std` the spread of tool calls per rollout; "
               "`entity_corr` is the Pearson correlation of a rollout's entity match rate with its "
               "correctness.")
    ci_note = ("Differences in percentage points, mean over seeds and questions, with a 95% bootstrap interval "
               "over questions (the same resample for every seed; seeds paired: same SFT start, questions and "
               "sampling seeds). Tool calls: mean ± std over seeds of the per-seed difference of the training mean.")
    lines = [f"# {title}", "", *notes, "", "## Held-out test set (mean ± std over seeds)", "", table, columns, "",
             "## Paired differences", "", ci_note, "", *paired["lines"],
             "", "## Entity analysis (summed over seeds)", "",
             "| run | questions where correct rollouts match more entities | ... wrong rollouts match more |",
             "|---|---|---|"]
    lines += [f"| {k} | {a} | {b} |" for k, (a, b) in entity.items()]
    lines += ["", "## The paper's claims here", "", *claims(groups, paired["diffs"], entity)]
    lines += ["", "## Training curves (mean ± std over seeds)", ""]
    lines += [f"![{name}]({p.as_posix()})" for name, p in plots.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(
        {"groups": {k: [r["summary"] for r in v] for k, v in groups.items()},
         "paired": {k: {m: dataclasses.asdict(d) if dataclasses.is_dataclass(d) else d for m, d in v.items()}
                    for k, v in paired["diffs"].items()},
         "entity_counts": entity}, indent=2, default=float, sort_keys=True) + "\n")
    return out / "report.md"


def _matrix(runs: Sequence[Mapping], questions: Sequence[str], which: int) -> np.ndarray:
    return score_matrix([r["per_question"] for r in runs], questions, which)


def paired_table(groups: Mapping[str, Sequence[Mapping]]) -> dict[str, Any]:
    """Each RL arm vs GRPO (same seeds) and vs the SFT start: Pass@1 / Pass@3 differences with CIs."""
    sft = groups.get(SFT_LABEL, [])
    grpo = {r["seed"]: r for r in groups.get(GRPO.label, [])}
    questions = sorted(sft[0]["per_question"]) if sft else sorted(next(iter(grpo.values()))["per_question"]) \
        if grpo else []
    diffs: dict[str, dict[str, Any]] = {}
    rows = ["| run | seeds | Δ Pass@1 vs GRPO | Δ Pass@3 vs GRPO | Δ Pass@1 vs SFT | Δ Pass@3 vs SFT | "
            "Δ train tool calls vs GRPO |", "|---|---|---|---|---|---|---|"]
    for name, runs in groups.items():
        if name == SFT_LABEL or not questions:
            continue
        d: dict[str, Any] = {}
        paired = [r for r in runs if r["seed"] in grpo]
        if name != GRPO.label and paired:
            for which, key in ((0, "pass@1"), (1, "pass@3")):
                d[f"{key} vs GRPO"] = paired_bootstrap(_matrix(paired, questions, which),
                                                       _matrix([grpo[r["seed"]] for r in paired], questions, which))
        if sft:
            for which, key in ((0, "pass@1"), (1, "pass@3")):
                a = _matrix(runs, questions, which)
                d[f"{key} vs SFT"] = paired_bootstrap(a, np.repeat(_matrix(sft, questions, which), len(runs), 0))
        tc = [r["summary"].get("train/tool_calls") - grpo[r["seed"]]["summary"].get("train/tool_calls")
              for r in paired if r["summary"].get("train/tool_calls") is not None
              and grpo[r["seed"]]["summary"].get("train/tool_calls") is not None]
        diffs[name] = d
        cell = lambda k: d[k].points() if k in d else "—"  # noqa: E731
        tool = _ms(tc, 3) if tc and name != GRPO.label else "—"
        rows.append(f"| {name} | {len(runs)} | {cell('pass@1 vs GRPO')} | {cell('pass@3 vs GRPO')} | "
                    f"{cell('pass@1 vs SFT')} | {cell('pass@3 vs SFT')} | {tool} |")
        d["train_tool_calls_vs_grpo"] = tc
    return {"lines": rows if len(rows) > 2 else ["(no RL runs)"], "diffs": diffs}


def claims(groups: Mapping[str, Sequence[Mapping]], diffs: Mapping[str, Mapping[str, Any]],
           entity: Mapping[str, tuple[int, int]]) -> list[str]:
    """One line per claim of PAPER.md, decided from the intervals (a claim holds only if its interval
    excludes zero in the claimed direction)."""
    out = []
    ch = sum(a for a, _ in entity.values())
    wh = sum(b for _, b in entity.values())
    out.append(f"1. Correct rollouts mention more ground-truth entities than wrong ones: "
               f"{'holds' if ch > 2 * wh else 'not shown'} ({ch} questions vs {wh}, all runs).")
    e03 = diffs.get(Arm(0.3).label, {})
    p1, p3 = e03.get("pass@1 vs GRPO"), e03.get("pass@3 vs GRPO")
    if p1 is not None:
        verdict = "holds" if p1.lo > 0 and p3.lo > 0 else ("partly" if p1.lo > 0 or p3.lo > 0 else "not shown")
        out.append(f"2. E-GRPO (alpha=0.3) beats GRPO on Pass@1 and Pass@3: {verdict} "
                   f"(Pass@1 {p1.points()}, Pass@3 {p3.points()} points).")
        tc = e03.get("train_tool_calls_vs_grpo") or []
        if tc:
            m, sd = float(np.mean(tc)), float(np.std(tc, ddof=1)) if len(tc) > 1 else 0.0
            fewer = m < 0 and (len(tc) > 1 and m + 2 * sd / math.sqrt(len(tc)) < 0)
            out.append(f"3. E-GRPO uses fewer tool calls per rollout in training: {'holds' if fewer else 'not shown'} "
                       f"({m:+.3f} ± {sd:.3f} calls over {len(tc)} seeds).")
    e05 = groups.get(Arm(0.5).label)
    if e05 and Arm(0.3).label in groups:
        by_seed = {r["seed"]: r for r in groups[Arm(0.3).label]}
        pairs = [r for r in e05 if r["seed"] in by_seed]
        qs = sorted(pairs[0]["per_question"]) if pairs else []
        if pairs:
            d = paired_bootstrap(_matrix([by_seed[r["seed"]] for r in pairs], qs, 0), _matrix(pairs, qs, 0))
            means = {k: float(np.mean([r["summary"]["pass@1"] for r in v])) for k, v in groups.items()
                     if k != SFT_LABEL}
            best = max(means, key=means.get)
            out.append(f"4. alpha = 0.3 is best and 0.5 worse than 0.3: "
                       f"{'holds' if d.lo > 0 and best == Arm(0.3).label else 'not shown'} "
                       f"(Pass@1 0.3 minus 0.5: {d.points()} points; best mean Pass@1: {best}).")
    return out


def _alpha_curve(groups: Mapping[str, Sequence[Mapping]], path: Path) -> Path | None:
    pts = sorted((runs[0]["alpha"], [r["summary"]["pass@1"] for r in runs]) for runs in groups.values()
                 if runs and runs[0]["alpha"] >= 0 and runs[0].get("schedule", "constant") == "constant")
    if len(pts) < 2:
        return None

    sft = groups.get(SFT_LABEL)
    return plot_errorbars([a for a, _ in pts], [100 * np.mean(v) for _, v in pts], [100 * np.std(v) for _, v in pts],
                          path, xlabel="alpha (0 = GRPO)", ylabel="held-out Pass@1 (%), mean ± std over seeds",
                          title="Pass@1 vs alpha", baseline=100 * sft[0]["summary"]["pass@1"] if sft else None,
                          baseline_label="SFT start")


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
