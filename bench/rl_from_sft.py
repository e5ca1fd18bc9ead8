"""Diagnostic (not a speed benchmark): one RL run from a demo run's SFT checkpoint, with overrides.

    PYTHONPATH=. .venv/bin/python -m bench.rl_from_sft RUN_DIR OUT [--eval test:0.6:0.95:3:0]
        [--pipeline-config configs/demo_cpu.py] [--config.KEY=VALUE ...]

RUN_DIR is an `egrpo demo` (or replicate) run folder: its data/ and sft/ckpt are reused, so a sweep
over RL settings (temperature, lr, optimizer, batch, alpha, advantage_norm) shares one cold start.
Prints one line per RL step after the run (reward, accuracy, entropy, informative groups, tool calls) and each
`--eval split:temperature:top_p:k:n` (n = 0: the whole split; rl: the questions RL samples) before and
after RL, then after - before with a paired 95% bootstrap interval over questions; writes
OUT/result.json and OUT/logs/metrics.jsonl. The sweeps in docs/rl-diagnosis.md were run with it.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from egrpo_jax import runtime

STEP_KEYS = ("reward/mean", "accuracy", "entropy", "grad_norm", "groups/informative", "tool_calls/per_rollout",
             "errors/format", "kl_sampler", "skipped")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("out")
    ap.add_argument("--pipeline-config", default="configs/demo_cpu.py")
    ap.add_argument("--eval", action="append", default=[], metavar="SPLIT:T:TOP_P:K:N")
    ap.add_argument("--before-from", metavar="RESULT_JSON",
                    help="take the before-RL evaluations from an earlier run's result.json on the same RUN_DIR "
                         "(evaluation is deterministic on one machine) instead of running them again")
    from egrpo_jax.commands.common import add_config_arguments, parse_args

    add_config_arguments(ap)
    args = parse_args(ap, argv)
    evals = [_eval_spec(s) for s in args.eval]
    runtime.apply_env()

    from egrpo_jax import config as C
    from egrpo_jax.assembly import agent_config, build_tools
    from egrpo_jax.data.io import load_questions
    from egrpo_jax.e2e import pipeline as PL
    from egrpo_jax.datagen.synth.build import existing_data
    from egrpo_jax.e2e.settings import load_pipeline_config
    from egrpo_jax.eval.runner import evaluate
    from egrpo_jax.eval.stats import per_question

    from bench.pair_runs import differences
    from egrpo_jax.rl.loop import run_train
    from egrpo_jax.sampling.api import SamplingParams

    data = existing_data(os.path.join(args.run_dir, "data"))
    if data is None:
        raise SystemExit(f"{args.run_dir}/data: not a finished demo data folder")
    _, rl = PL.run_configs(load_pipeline_config(args.pipeline_config), data, args.out,
                           tokenizer_vocab=PL.tokenizer_vocab(data))
    rl.checkpoint.init_from, rl.checkpoint.dir = os.path.join(args.run_dir, "sft", "ckpt"), ""
    rl.logging.dir = os.path.join(args.out, "logs")
    C.apply_overrides(rl, args.config_overrides)
    C.validate(rl)
    mesh, model, tok = PL.load_policy(rl)
    splits = {"train": load_questions(data.train), "test": load_questions(data.test),
              "rl": load_questions(rl.data.questions)}  # what RL samples: the rl split when the world has one
    result: dict = {"run_dir": args.run_dir, "pipeline_config": args.pipeline_config,
                    "overrides": args.config_overrides}

    earlier = {}
    if args.before_from:
        with open(args.before_from) as f:
            earlier = json.load(f)
        for field in ("run_dir", "pipeline_config"):  # the start's evaluations are only valid for the same start
            if earlier.get(field) != result[field]:
                raise SystemExit(f"--before-from {args.before_from}: its {field} is {earlier.get(field)!r}, "
                                 f"this run's is {result[field]!r}")

    def run_evals(tag):
        for split, t, top_p, k, n in evals:
            recs = splits[split][: n or None]
            key = f"{tag}:{split}:{t:g}:{top_p:g}:{k}:{len(recs)}"
            if tag == "before" and earlier:
                if key not in earlier:
                    raise SystemExit(f"--before-from {args.before_from}: has no {key!r} (has "
                                     f"{', '.join(k_ for k_ in earlier if k_.startswith('before:')) or 'none'})")
                result[key] = earlier[key]
                continue
            scores, s = evaluate(model, tok, recs, tools, k=k, sampling=SamplingParams(temperature=t, top_p=top_p),
                            agent_cfg=agent_config(rl), batch_size=16, seed=1234, ks=sorted({1, k}))
            result[key] = {m: s.get(m) for m in ("pass@1", f"pass@{k}", "format_error_rate", "tool_calls/mean",
                                                 "near_miss/wrong_rate", "entity_match/wrong")}
            print(key, json.dumps(result[key]), flush=True)
            # per question (Pass@1, Pass@k): pair two runs' evaluations with eval.stats.paired_bootstrap
            result[key]["per_question"] = per_question(
                {"question_id": x.question_id, "correct": x.correct} for x in scores)

    with build_tools(rl, tok) as tools:
        run_evals("before")
        t0 = time.perf_counter()
        run_train(rl, model=model, tokenizer=tok, tools=tools, records=splits["rl"], mesh=mesh)
        result["rl_s"] = time.perf_counter() - t0
        with open(os.path.join(rl.logging.dir, "metrics.jsonl")) as f:
            for m in map(json.loads, f):
                print(m["step"], " ".join(f"{k.split('/')[-1]}={m.get(k, float('nan')):.3f}" for k in STEP_KEYS))
        run_evals("after")
    for spec, by_metric in differences([result], [result], "before").items():  # after - before, paired
        result[f"delta:{spec}"] = d = {m: {"mean": x.mean, "lo": x.lo, "hi": x.hi} for m, (_, _, x) in by_metric.items()}
        print(f"delta:{spec}", " ".join(f"{m}={v['mean']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}]"
                                         for m, v in d.items()), flush=True)
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    return 0


def _eval_spec(s: str) -> tuple[str, float, float, int, int]:
    parts = s.split(":")
    if len(parts) != 5 or parts[0] not in ("train", "test", "rl"):
        raise SystemExit(f"--eval {s!r}: want split:temperature:top_p:k:n with split train|test|rl")
    return parts[0], float(parts[1]), float(parts[2]), int(parts[3]), int(parts[4])


if __name__ == "__main__":
    raise SystemExit(main())
