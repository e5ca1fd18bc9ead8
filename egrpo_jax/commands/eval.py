"""`egrpo eval`: Pass@k, tool calls, format errors and the entity analysis of a policy, as a report.

    egrpo eval --model PATH_OR_CKPT --questions test.jsonl --index INDEX_DIR --k 3 \
        --temperature 0.6 --top-p 0.95 --out runs/eval

--temperature 0 is greedy decoding (then --k must be 1: every sample would be the same).
Writes OUT/report.md, summary.json, rollouts.jsonl (scores), trajectories.jsonl (text) and plots/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="HF folder (config.json + safetensors), .gguf file, or training checkpoint folder",
    )
    p.add_argument("--questions", required=True, help="questions JSONL (id, question, answer, entities, ...)")
    p.add_argument(
        "--index",
        required=True,
        help="search backend: BM25 index folder, corpus .jsonl, or http(s):// search server url",
    )
    p.add_argument("--out", required=True, help="report folder (created)")
    p.add_argument("--k", type=int, default=3, help="rollouts per question (Pass@k; default 3)")
    p.add_argument("--temperature", type=float, default=0.6, help="0 = greedy (default 0.6, as the paper)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default 0.95)")
    p.add_argument("--top-k", type=int, default=0, help="top-k filter, 0 = off")
    p.add_argument("--batch-size", type=int, default=8, help="questions per engine batch (rows = batch * k)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N questions")
    p.add_argument("--max-tool-calls", type=int, default=40)
    p.add_argument("--max-total-tokens", type=int, default=4096, help="prompt + rollout tokens per row")
    p.add_argument("--max-turn-tokens", type=int, default=0, help="tokens per model turn, 0 = no turn limit")
    p.add_argument("--prompt-style", choices=("full", "short"), default="full")
    p.add_argument(
        "--strict-entities",
        action="store_true",
        help="the paper's literal entity match (case-sensitive substring) instead of normalised words",
    )
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="compute dtype")
    p.add_argument(
        "--training-metrics",
        default=None,
        help="a training run's metrics JSONL: adds training-curve plots to the report",
    )
    p.add_argument("--title", default=None, help="report title (default: the model path)")


def _check_args(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise SystemExit(f"egrpo eval: --k must be >= 1, got {args.k}")
    if args.temperature == 0 and args.k > 1:
        raise SystemExit(
            f"egrpo eval: --temperature 0 is greedy, so --k {args.k} would repeat one rollout; use --k 1"
        )
    if args.batch_size < 1:
        raise SystemExit(f"egrpo eval: --batch-size must be >= 1, got {args.batch_size}")
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"egrpo eval: --limit must be >= 1, got {args.limit}")
    for flag in ("questions", "training_metrics"):
        path = getattr(args, flag)
        if path is not None and not os.path.isfile(path):
            raise SystemExit(f"egrpo eval: --{flag.replace('_', '-')} {path}: file not found")
    if not os.path.exists(args.model):
        raise SystemExit(f"egrpo eval: --model {args.model}: not found")


def load_policy(path: str, dtype: str):
    """(model, tokenizer) from an HF folder / .gguf file, or a training checkpoint folder."""
    if path.endswith(".gguf") or os.path.isfile(os.path.join(path, "config.json")):
        from egrpo_jax.models import load_pretrained

        loaded = load_pretrained(path, dtype=dtype)
        if loaded.tokenizer is None:
            raise SystemExit(f"egrpo eval: --model {path}: no tokenizer found next to the weights")
        return loaded.model, loaded.tokenizer
    raise SystemExit(
        f"egrpo eval: --model {path}: expected an HF folder (config.json) or a .gguf file; export a training "
        "checkpoint first with `egrpo convert --checkpoint DIR --config FILE --out HF_DIR`"
    )


def _trajectory_row(t) -> dict:
    return {
        "question_id": t.question_id,
        "sample": t.sample_index,
        "status": t.status,
        "format_error": t.format_error,
        "detail": t.detail,
        "answer": t.answer,
        "thoughts": t.thoughts,
        "tool_calls": [{"name": c.name, "arguments": c.arguments, "ok": c.ok} for c in t.tool_calls],
        "model_tokens": t.num_model_tokens,
        "text": t.text,
    }


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    from tqdm import tqdm

    from egrpo_jax.agent.config import AgentConfig
    from egrpo_jax.data.io import DataError, load_questions
    from egrpo_jax.eval import analysis, report, runner
    from egrpo_jax.sampling.api import SamplingParams
    from egrpo_jax.tools.registry import ToolSet, open_backend

    try:
        sampling = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k)
        agent_cfg = AgentConfig(
            max_tool_calls=args.max_tool_calls,
            max_total_tokens=args.max_total_tokens,
            max_turn_tokens=args.max_turn_tokens,
            prompt_style=args.prompt_style,
        )
    except ValueError as e:
        raise SystemExit(f"egrpo eval: {e}") from None
    try:
        records = load_questions(args.questions)
    except DataError as e:
        raise SystemExit(f"egrpo eval: {e}") from None
    if args.limit is not None:
        records = records[: args.limit]
    training_rows = analysis.read_metrics_jsonl(args.training_metrics) if args.training_metrics else None
    model, tokenizer = load_policy(args.model, args.dtype)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(records), desc="eval", unit="q", file=sys.stderr)
    with (
        (out / "trajectories.jsonl").open("w") as dump,
        ToolSet(open_backend(args.index), tokenizer=tokenizer) as tools,
    ):

        def on_batch(_b, trajs, scores):
            for t in trajs:
                dump.write(json.dumps(_trajectory_row(t)) + "\n")
            dump.flush()
            bar.update(len({s.question_id for s in scores}))
            bar.set_postfix(correct=f"{sum(s.correct for s in scores)}/{len(scores)}")

        scores, summary = runner.evaluate(
            model,
            tokenizer,
            records,
            tools,
            k=args.k,
            sampling=sampling,
            agent_cfg=agent_cfg,
            batch_size=args.batch_size,
            seed=args.seed,
            strict=args.strict_entities,
            on_batch=on_batch,
        )
    bar.close()
    meta = {
        "model": args.model,
        "questions": args.questions,
        "index": args.index,
        "k": args.k,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "seed": args.seed,
        "max_tool_calls": args.max_tool_calls,
        "max_total_tokens": args.max_total_tokens,
        "strict_entities": args.strict_entities,
    }
    extra = {k: v for k, v in summary.items() if k.startswith("time/")}
    paths = report.write_run_report(
        out,
        scores,
        title=args.title or f"Evaluation of {args.model}",
        ks=sorted({1, args.k}),
        meta={**meta, **extra},
        training_rows=training_rows,
    )
    s = report.load_summary(out)
    c = s["entity_comparison"]
    print(
        f"{s['questions']} questions x {args.k}: pass@1 {100 * s['pass@1']:.1f}%  "
        f"pass@{args.k} {100 * s[f'pass@{args.k}']:.1f}%  tool calls {s['tool_calls/mean']:.2f}  "
        f"format errors {100 * s['format_error_rate']:.1f}%  entity match correct/wrong "
        f"{report.format_value('entity_match/', s['entity_match/correct'])}/"
        f"{report.format_value('entity_match/', s['entity_match/wrong'])}  "
        f"correct-higher {c['correct_higher']} vs {c['wrong_higher']}"
    )
    print(f"report: {paths['report']}")
    return 0
