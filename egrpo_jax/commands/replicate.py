"""`egrpo replicate [--quick] [--out runs/replicate] [--docs docs/replicate]`: the paper's claims in miniature.

One SFT cold start, then GRPO (alpha = 0) and E-GRPO (alpha = 0.1, 0.3, 0.5) runs with the same
seeds, steps and compute, each evaluated on the held-out test split; the report (markdown + PNG
plots) goes to --docs. Finished runs are kept: running the command again resumes where it stopped.
--quick: alphas 0 and 0.3, seeds 0-2, RL steps from --rl-steps (default 4).
"""

from __future__ import annotations

import os

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "replicate_cpu.py")
FULL_ALPHAS = (0.0, 0.1, 0.3, 0.5)
QUICK_ALPHAS = (0.0, 0.3)


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
    parser.add_argument("--out", default="runs/replicate", help="run folder (checkpoints, logs, per-run evals)")
    parser.add_argument("--docs", default="docs/replicate", help="where report.md and plots/ are written")
    parser.add_argument("--quick", action="store_true", help="alphas 0,0.3; seeds 0,1,2; 4 RL steps")
    parser.add_argument("--alphas", default=None, help="comma-separated alphas (default 0,0.1,0.3,0.5)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--sft-steps", type=int, default=None, help="override the SFT steps")
    parser.add_argument("--rl-steps", type=int, default=None, help="override the RL steps per run")
    parser.add_argument("--eval-questions", type=int, default=None, help="held-out questions evaluated per run")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import dataclasses

    from egrpo_jax.commands.demo import config_path
    from egrpo_jax.e2e.replicate import aggregate, run_replicate
    from egrpo_jax.e2e.settings import load_pipeline_config

    pc = load_pipeline_config(args.config or config_path(os.path.normpath(DEFAULT_CONFIG)))
    alphas = _floats(args.alphas) if args.alphas else (QUICK_ALPHAS if args.quick else FULL_ALPHAS)
    seeds = _ints(args.seeds) if args.seeds else (0, 1, 2)
    rl_steps = args.rl_steps if args.rl_steps is not None else (4 if args.quick else None)
    for steps, cfg in ((args.sft_steps, pc.sft), (rl_steps, pc.rl)):
        if steps is not None:
            if steps < 1:
                raise ValueError(f"--sft-steps / --rl-steps must be >= 1, got {steps}")
            cfg.train.steps = steps
            cfg.optim.warmup_steps = min(cfg.optim.warmup_steps, steps)
    if args.eval_questions is not None:
        pc.pipeline = dataclasses.replace(pc.pipeline, eval_questions=args.eval_questions)
    res = run_replicate(pc, args.out, alphas=alphas, seeds=seeds, progress=not args.no_progress)
    st = res["settings"]
    notes = [
        (f"Run: `egrpo replicate {'--quick ' if args.quick else ''}` with config `{pc.source}`: alphas "
         f"{st['alphas']}, seeds {st['seeds']}, {st['sft_steps']} SFT steps (one shared checkpoint), "
         f"{st['rl_steps']} RL steps per run ({st['questions_per_step']} questions x G={st['group_size']}), "
         f"evaluation on {st['eval_questions']} held-out test questions with k={st['eval_k']} samples."),
        "", "Data: " + ", ".join(f"{k}={v}" for k, v in res["data"].items()),
        "", "Timings (s): " + ", ".join(f"{k}={v:.0f}" for k, v in res["timings_s"].items()),
    ]
    path = aggregate(res["records"], args.docs, notes=notes)
    print(path.read_text(encoding="utf-8"))
    return 0
