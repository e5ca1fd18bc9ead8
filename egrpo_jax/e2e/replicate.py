"""`egrpo replicate`: GRPO (alpha = 0) vs E-GRPO arms from one SFT checkpoint, over seeds.

Every (arm, seed) run starts from the same SFT params and sees the same questions in the same
order and the same sampling seeds (data.seed = train.seed = seed), so arms are compared on paired
runs with equal steps and compute. Each run is evaluated on the held-out test split; its record
(run_record) is what e2e/replicate_report.py turns into the report.
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
from egrpo_jax.checkpoint import Checkpointer
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
from egrpo_jax.rl.loop import run_train
from egrpo_jax.rl.sft import run_sft
from egrpo_jax.rl.watch import COMPOSITION, WATCH
from egrpo_jax.eval.report import ROLLOUTS_FILE, load_summary
from egrpo_jax.eval.stats import per_question
from egrpo_jax.eval.train_curve import excess_per_step
from egrpo_jax.e2e.grid_store import (
    RunStore,
    check_arithmetic,
    check_data,
    data_sha256,
    fingerprint,
    sft_loss_check,
    sft_losses,
)
from egrpo_jax.metrics_log import read_metrics

RUN_SUMMARY = "run.json"  # per (arm, seed) run: eval summary + training metrics rows + per-question scores
RUN_MARKER = ".egrpo-replicate-run"  # written first into every run folder replicate creates
SFT_LABEL = "SFT (no RL)"
# what a record keeps of each training step (the report, the training-reward curve and the step's cost);
# the run folder's logs/metrics.jsonl keeps every metric
RECORD_KEYS = ("step", "accuracy", "reward/mean", "reward/std", "tool_calls/per_rollout", "entity_match/all",
               "entity_match/correct", "entity_match/wrong", "groups/informative", "skipped", "dynamic/rounds",
               "alpha", "entropy", "kl_sampler", "ratio", "loss", "grad_norm", "response/model_tokens",
               "response/total_tokens", "time/step_s", "time/rollout_s", "time/train_s", *COMPOSITION, *WATCH)


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
            "training": training_record(training_rows), "per_question": per_question(rollouts)}


def training_record(rows: Sequence[Mapping]) -> list[dict]:
    return [{k: r[k] for k in RECORD_KEYS if k in r} for r in rows]


def run_replicate(pc: PipelineConfig, out_dir: str, *, arms: Sequence[Arm], seeds: Sequence[int],
                  store_dir: str | None = None, rl_eval: bool = True, progress: bool = True,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """SFT once, evaluate it (on test, and on the whole rl split when there is one), then one RL run
    + evaluation per (arm, seed); returns the run records.

    `rl_eval` False skips the rl-split evaluation (and so the training-reward curve): --quick.
    Finished runs are kept (runs are deterministic per seed), so running again resumes. A run folder
    without this command's marker is someone else's: replicate stops rather than delete it. With
    `store_dir` every finished run's record is also kept there (grid_store: tracked, fingerprinted by
    the SFT start) and a run recorded there is not run again.
    """
    quiet_tensorboard()
    timer = Timer(log)
    s = pc.pipeline
    if store_dir:
        check_arithmetic(store_dir)  # seconds, before the half-hour SFT start a refusal would waste
    data_dir = os.path.join(out_dir, "data")
    data = existing_data(data_dir)  # a resumed replicate keeps its data (the SFT checkpoint depends on it)
    if data is None:
        with timer.phase("data"):
            data = build_pipeline_data(s, data_dir)
    if store_dir:
        check_data(store_dir, data_dir)  # seconds after the data, before the SFT start
    sft_cfg, base = run_configs(pc, data, out_dir, tokenizer_vocab=tokenizer_vocab(data))
    sft_cfg.logging.progress = base.logging.progress = progress
    sft_start(sft_cfg, timer, log, after_step=sft_loss_check(store_dir) if store_dir else None)
    test, rl_pool = load_questions(data.test), load_questions(base.data.questions)
    evals = [("eval_sft", test, base.eval.limit, "SFT policy")]
    if data.rl and rl_eval:  # the questions RL samples, all of them: each step's difficulty for the training curve
        evals.append(("eval_sft_rl", rl_pool, 0, "SFT policy, rl split"))
    policy = None  # (model, tokenizer), loaded only if an evaluation or the fingerprint needs it
    for folder, questions, limit, title in evals:
        if not os.path.isfile(os.path.join(out_dir, folder, "summary.json")):
            with timer.phase(f"eval SFT ({folder})"):
                policy = policy or load_policy(base)[1:]
                cfg = copy.deepcopy(base)
                cfg.eval.limit = limit
                with build_tools(cfg, policy[1]) as tools:
                    evaluate_policy(*policy, tools, questions, cfg, os.path.join(out_dir, folder), title=title,
                                    progress=progress)
    sft_eval = os.path.join(out_dir, "eval_sft")
    n_questions = len(test[: base.eval.limit or None])
    sft = dict(_reused(run_record(sft_eval, [], arm=None, seed=-1), sft_eval, None, 0, n_questions))
    sft_rl = None
    if data.rl and rl_eval:
        with open(os.path.join(out_dir, "eval_sft_rl", ROLLOUTS_FILE), encoding="utf-8") as f:
            sft_rl = per_question(json.loads(line) for line in f if line.strip())
        sft["rl_per_question"] = sft_rl
    store = None
    if store_dir:
        policy = policy or load_policy(base)[1:]
        store = RunStore(store_dir, fingerprint(policy[0], sft["per_question"], pc.rl, s))
        store.put_start({"sft": sft, "data_sha256": data_sha256(data_dir),
                         "sft_losses": sft_losses(os.path.join(sft_cfg.logging.dir, "sft"))})
    del policy
    records = [sft]
    for seed in seeds:
        for arm in arms:
            name = run_name(arm, seed)
            run_dir = os.path.join(out_dir, "runs", name)
            done = os.path.join(run_dir, RUN_SUMMARY)
            stored = store.get(name) if store else None
            if os.path.isfile(done):
                with open(done, encoding="utf-8") as f:
                    rec, where = json.load(f), run_dir
            elif stored is not None:
                rec, where = stored, str(store.dir / "runs" / f"{name}.json")
            else:
                rec, where = _run_one(base, arm, seed, run_dir, rl_pool, test, timer, progress), run_dir
            rec = dict(_reused(rec, where, arm, base.train.steps, n_questions))
            rec["training"] = training_record(rec["training"])  # run.json written before RECORD_KEYS kept all
            rec["train_excess"] = _train_excess(rec["training"], rl_pool, base, seed, sft_rl)
            if store and stored is None:
                store.put(name, rec)
            records.append(rec)
    return {"records": records, "timings_s": timer.seconds, "data": data.stats,
            "settings": {"arms": [a.label for a in arms], "seeds": list(seeds), "rl_steps": base.train.steps,
                         "sft_steps": sft_cfg.train.steps, "group_size": base.rl.group_size,
                         "questions_per_step": base.data.batch_size, "eval_k": s.eval_k,
                         "eval_questions": s.eval_questions or data.stats["questions/test"]}}


def sft_start(sft_cfg, timer: Timer, log: Callable[[str], None], *,
              after_step: Callable[[int, dict], None] | None = None) -> None:
    """The SFT checkpoint every arm starts from: reused when it holds the final step, continued from its
    latest saved step when an earlier call was stopped mid-way (a resumed SFT ends with the same params:
    tests/e2e/test_e2e_pipeline.py), trained otherwise. `after_step`: run_sft's hook (grid_store.sft_loss_check)."""
    steps, where = sft_cfg.train.steps, sft_cfg.checkpoint.dir
    latest = saved_step(where)
    if latest == steps:
        log(f"   reusing the SFT checkpoint in {where}")
        return
    if latest is not None and latest > steps:
        raise ValueError(f"{where}: holds SFT step {latest}, this call trains {steps} steps: choose another --out "
                         "or move it away")
    if latest is not None:
        log(f"   continuing the stopped SFT in {where} from step {latest} of {steps}")
    cfg = copy.deepcopy(sft_cfg)
    cfg.checkpoint.resume = True
    with timer.phase("sft"):
        run_sft(cfg, after_step=after_step)


def saved_step(directory: str) -> int | None:
    """The latest complete step in a checkpoint folder (None: no folder or no complete step)."""
    if not os.path.isdir(directory):
        return None
    ckpt = Checkpointer(directory)
    try:
        return ckpt.latest_step()
    finally:
        ckpt.close()


def _run_one(base, arm: Arm, seed: int, run_dir: str, rl_pool, test, timer: Timer, progress: bool) -> dict:
    """Train one (arm, seed) from the SFT params, evaluate it, write its record to run_dir/run.json."""
    _fresh_run_dir(run_dir)
    cfg = copy.deepcopy(base)
    cfg.rl.alpha, cfg.train.seed, cfg.data.seed = float(arm.alpha), int(seed), int(seed)
    cfg.rl.alpha_schedule = arm.schedule
    if arm.schedule == "linear":
        cfg.rl.alpha_final, cfg.rl.alpha_decay_steps = 0.0, int(cfg.train.steps)
    cfg.checkpoint.dir = os.path.join(run_dir, "ckpt")
    cfg.logging.dir = os.path.join(run_dir, "logs")
    name = run_name(arm, seed)
    with timer.phase(f"{name}: train {cfg.train.steps} steps + eval"):
        mesh, model, tok = load_policy(cfg)
        with build_tools(cfg, tok) as tools:
            run_train(cfg, model=model, tokenizer=tok, tools=tools, records=rl_pool, mesh=mesh)
            rows = read_metrics(cfg.logging.dir)
            evaluate_policy(model, tok, tools, test, cfg, os.path.join(run_dir, "eval"),
                            title=f"{arm.label}, seed {seed}", training_rows=rows, progress=progress)
    rec = run_record(os.path.join(run_dir, "eval"), rows, arm=arm, seed=int(seed))
    with open(os.path.join(run_dir, RUN_SUMMARY), "w", encoding="utf-8") as f:
        json.dump(rec, f, default=float)
    return rec


def _train_excess(rows: Sequence[Mapping], rl_pool, base, seed: int,
                  sft_rl: Mapping[str, tuple[float, float]] | None) -> list[float] | None:
    """Training accuracy per step minus the SFT start's Pass@1 on that step's questions (eval.train_curve);
    None without an rl-split evaluation of the start or with dynamic sampling (steps not re-drawable)."""
    if sft_rl is None or base.rl.dynamic_sampling:
        return None
    return excess_per_step(rows, rl_pool, base.data.batch_size, int(seed), {q: v[0] for q, v in sft_rl.items()})


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
