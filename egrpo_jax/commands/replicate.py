"""`egrpo replicate [--quick] [--out runs/replicate] [--docs DIR]`: the paper's claims in miniature.

One SFT cold start, then GRPO (alpha = 0), E-GRPO (alpha = 0.1, 0.3, 0.5) and E-GRPO with alpha
decaying 0.3 -> 0 (the paper's ablation), each over seeds 0-4 with the same steps and compute, each
evaluated on the held-out test split. The report (markdown + PNG plots) goes to <out>/report, and
to --docs only when given. Finished runs are kept: running the command again resumes where it stopped;
with --docs their records are kept in that (tracked) folder too, so a grid longer than a session
resumes from a fresh clone once the SFT start reproduces bit for bit (e2e/grid_store.py).
`--report-only --docs A [--docs B ...] [--out DIR]` reports recorded runs without training: one grid
in its folder (or DIR), several grids (one SFT start each, e.g. from machines whose arithmetic
differs) pooled into DIR, runs paired by start and seed.
--quick: GRPO and alpha 0.3, seeds 0-1, 60 SFT steps, 4 RL steps, 48 held-out questions, no rl-split
evaluation of the start: every phase but that one, shrunk (a smoke run; its numbers say nothing
about the claims).
"""

from __future__ import annotations

import dataclasses
import os
import shutil

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "replicate_cpu.py")
DEFAULT_OUT = "runs/replicate"
FULL_SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
QUICK_SFT_STEPS = 60  # a smoke run of every phase, not a usable policy (the full SFT is 400 steps)


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--alphas {text!r}: expected comma-separated numbers, e.g. 0,0.3") from None
    if not vals or any(v < 0 for v in vals):
        raise ValueError(f"--alphas {text!r}: expected one or more numbers >= 0")
    return vals


def _ints(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if not vals or any(v < 0 for v in vals):
        raise ValueError(f"--seeds {text!r}: expected one or more integers >= 0")
    return vals


def configure(parser) -> None:
    parser.add_argument("--config", default=None, help="pipeline config (default configs/replicate_cpu.py)")
    parser.add_argument("--out", default=None, help="run folder (checkpoints, logs, per-run evals; default "
                        f"{DEFAULT_OUT}); with --report-only, where the report goes (needed for several --docs)")
    parser.add_argument("--docs", action="append", default=None, help="also write report.md, plots/ and every finished run's record "
                        "(start.json, runs/*.json) here, e.g. docs/replicate-grid; runs recorded there by an earlier "
                        "call (another session or machine) are reused when the SFT start and settings are the same; given several times "
                        "with --report-only: one report of those grids pooled (runs paired by start and seed)")
    parser.add_argument("--report-only", action="store_true", help="write the report of the runs recorded in --docs "
                        "(start.json, runs/*.json) there, or of several --docs pooled into --out, and stop: no data, "
                        "SFT, training or evaluation")
    parser.add_argument("--quick", action="store_true", help="GRPO and alpha 0.3; seeds 0,1; 60 SFT and 4 RL steps; 48 questions")
    parser.add_argument("--alphas", default=None, help="comma-separated constant alphas instead of the paper's "
                        "arms (0, 0.1, 0.3, 0.5 and 0.3 -> 0)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2,3,4)")
    parser.add_argument("--sft-steps", type=int, default=None, help="override the SFT steps")
    parser.add_argument("--rl-steps", type=int, default=None, help="override the RL steps per run")
    parser.add_argument("--eval-questions", type=int, default=None, help="held-out questions evaluated per run")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from egrpo_jax.commands.demo import config_path
    from egrpo_jax.e2e.replicate import PAPER_ARMS, QUICK_ARMS, Arm, run_replicate
    from egrpo_jax.e2e.replicate_report import aggregate
    from egrpo_jax.e2e.settings import load_pipeline_config

    if args.report_only:
        return _report_only(args.docs or [], args.out)
    if args.docs and len(args.docs) > 1:
        raise ValueError(f"--docs given {len(args.docs)} times: a run keeps its records in one folder (several "
                         "--docs are for --report-only, which pools them)")
    docs, out = (args.docs or [None])[0], args.out or DEFAULT_OUT
    pc = load_pipeline_config(args.config or config_path(os.path.normpath(DEFAULT_CONFIG)))
    arms = tuple(Arm(a) for a in _floats(args.alphas)) if args.alphas else (QUICK_ARMS if args.quick else PAPER_ARMS)
    seeds = _ints(args.seeds) if args.seeds else (QUICK_SEEDS if args.quick else FULL_SEEDS)
    rl_steps = args.rl_steps if args.rl_steps is not None else (4 if args.quick else None)
    sft_steps = args.sft_steps if args.sft_steps is not None else (QUICK_SFT_STEPS if args.quick else None)
    for steps, cfg in ((sft_steps, pc.sft), (rl_steps, pc.rl)):
        if steps is not None:
            if steps < 1:
                raise ValueError(f"--sft-steps / --rl-steps must be >= 1, got {steps}")
            cfg.train.steps = steps
            cfg.optim.warmup_steps = min(cfg.optim.warmup_steps, steps)
    eval_questions = args.eval_questions if args.eval_questions is not None else (48 if args.quick else None)
    if eval_questions is not None:
        pc.pipeline = dataclasses.replace(pc.pipeline, eval_questions=eval_questions)
    res = run_replicate(pc, out, arms=arms, seeds=seeds, store_dir=docs,
                        rl_eval=not args.quick, progress=not args.no_progress)
    st = res["settings"]
    notes = [
        (f"Run: `egrpo replicate{' --quick' if args.quick else ''}` with config `{pc.source}`: arms "
         f"{', '.join(st['arms'])}; seeds {st['seeds']}; {st['sft_steps']} SFT steps (one shared checkpoint); "
         f"{st['rl_steps']} RL steps per run ({st['questions_per_step']} questions x G={st['group_size']}); "
         f"evaluation on {st['eval_questions']} held-out test questions with k={st['eval_k']} samples."),
        "", "Data: " + ", ".join(f"{k}={v}" for k, v in res["data"].items()),
        "", ("Timings of this call (s): " + ", ".join(f"{k}={v:.0f}" for k, v in res["timings_s"].items())
             if res["timings_s"] else "Timings: every phase was reused from earlier calls (their logs hold the times)."),
    ]
    path = aggregate(res["records"], os.path.join(out, "report"), notes=notes)
    if docs:
        os.makedirs(docs, exist_ok=True)
        shutil.copytree(path.parent, docs, dirs_exist_ok=True)
        path = os.path.join(docs, "report.md")
    with open(path, encoding="utf-8") as f:
        print(f.read())
    return 0


def _report_only(docs: list[str], out: str | None) -> int:
    from egrpo_jax.e2e.grid_store import pooled_runs, recorded_runs
    from egrpo_jax.e2e.replicate_report import aggregate

    if not docs:
        raise ValueError("--report-only needs --docs DIR: the folder whose recorded runs are reported")
    if len(docs) == 1:
        records, where = recorded_runs(docs[0]), out or docs[0]
        note = (f"Report of the {len(records) - 1} runs recorded in `{docs[0]}` (`egrpo replicate --report-only`; "
                "nothing was trained or evaluated for it). The config, steps and evaluation are the grid's: see its "
                "start.json.")
    else:
        if not out:
            raise ValueError(f"--report-only with {len(docs)} --docs pools them: name the pooled report's folder "
                             "with --out DIR")
        records, where = pooled_runs(docs), out
        note = (f"Pooled report of {len(records) - len(docs)} runs from {len(docs)} grids, one SFT start each "
                f"({', '.join(f'`{d}`' for d in docs)}; `egrpo replicate --report-only`, nothing trained or "
                "evaluated for it). A start is named by its grid's folder; runs are paired by start and seed and "
                "compared with their own start, so the spread between starts stays out of every difference. "
                "In the tables a seed is one (start, seed) pair, and the SFT row has one entry per start. "
                "Config, steps and evaluation: each grid's start.json (one settings fingerprint for all).")
    path = aggregate(records, where, notes=[note])
    with open(path, encoding="utf-8") as f:
        print(f.read())
    return 0
