"""`egrpo eval`: Pass@k, tool calls, format errors and the entity analysis of a policy, as a report.

    egrpo eval --model PATH --questions test.jsonl --index INDEX --out runs/eval [--k 3 ...]
    egrpo eval --config configs/tiny_cpu.py --model runs/tiny/ckpt --questions ... --out ...

Every flag below sets one config key (egrpo_jax/config.py: eval.*, agent.*, model.*, search.*), as
`--config.KEY=VALUE` does; the defaults are the config's. Flags apply after --config FILE, and
--config.KEY=VALUE overrides after the flags. --model is an HF folder, a .gguf file or a training
checkpoint folder. Writes OUT/report.md, summary.json, rollouts.jsonl (scores), trajectories.jsonl
(text), timing.json and plots/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from egrpo_jax.commands.common import add_config_arguments, run_config

# flag (argparse dest) -> the config key it sets
FLAG_KEYS = {
    "model": "model.path", "questions": "eval.questions", "k": "eval.k", "temperature": "eval.temperature",
    "top_p": "eval.top_p", "top_k": "eval.top_k", "batch_size": "eval.batch_size", "seed": "eval.seed",
    "limit": "eval.limit", "max_tool_calls": "agent.max_tool_calls", "max_total_tokens": "agent.max_total_tokens",
    "max_turn_tokens": "agent.max_turn_tokens", "prompt_style": "agent.prompt_style", "dtype": "model.dtype",
}


def configure(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--out", required=True, help="report folder (created)")
    g = p.add_argument_group("config keys as flags (default: the config's value)")

    def key(flag: str, help_text: str, **kw) -> None:
        dest = flag.lstrip("-").replace("-", "_")
        g.add_argument(flag, default=None, help=f"{help_text} [{FLAG_KEYS[dest]}]", **kw)

    key("--model", "HF folder, .gguf file, or training checkpoint folder")
    key("--questions", "questions JSONL (id, question, answer, entities, ...)")
    key("--k", "rollouts per question (Pass@k)", type=int)
    key("--temperature", "0 = greedy (then --k 1)", type=float)
    key("--top-p", "nucleus sampling mass", type=float)
    key("--top-k", "top-k filter, 0 = off", type=int)
    key("--batch-size", "questions in flight (engine rows = batch * k, refilled as rollouts end; the KV "
        "cache holds rows x max-total-tokens)", type=int)
    key("--seed", "sampling seed", type=int)
    key("--limit", "evaluate only the first N questions (0 = all)", type=int)
    key("--max-tool-calls", "tool calls per rollout", type=int)
    key("--max-total-tokens", "prompt + rollout tokens per row", type=int)
    key("--max-turn-tokens", "tokens per model turn, 0 = no turn limit", type=int)
    key("--prompt-style", "full (tool schemas) or short", choices=("full", "short"))
    key("--dtype", "compute dtype", choices=("float32", "bfloat16", "float16"))
    g.add_argument("--index", default=None, help="search: an index folder (any kind), a corpus .jsonl (BM25 on "
                   "the spot) or an http(s):// Search-R1 server [search.backend + search.index_dir / search.url]")
    g.add_argument("--strict-entities", action="store_true", help="the paper's literal entity match "
                   "(case-sensitive substring) instead of normalised words [eval.strict_match]")
    p.add_argument("--training-metrics", default=None,
                   help="a training run's metrics JSONL: adds training-curve plots to the report")
    p.add_argument("--title", default=None, help="report title (default: the model path)")


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The flags given, as config overrides."""
    out = [f"{key}={getattr(args, dest)}" for dest, key in FLAG_KEYS.items() if getattr(args, dest) is not None]
    if args.strict_entities:
        out.append("eval.strict_match=true")
    if args.index is not None:
        out += search_overrides(args.index)
    return out


def search_overrides(index: str) -> list[str]:
    """--index as search.* keys: a url, an index folder (its kind from meta.json) or a corpus file."""
    if index.startswith(("http://", "https://")):
        return ["search.backend=http", f"search.url={index}"]
    if os.path.isdir(index):
        from egrpo_jax.tools.index_folder import folder_kind

        return [f"search.backend={folder_kind(index)}", f"search.index_dir={index}"]
    if not os.path.isfile(index):
        raise FileNotFoundError(f"--index {index}: file not found")
    return ["search.backend=bm25", f"search.index_dir={index}"]


def _check(cfg, args: argparse.Namespace) -> None:
    if not cfg.model.path:
        raise ValueError("config key model.path = '': name the policy (--model PATH)")
    if not cfg.eval.questions:
        raise ValueError("config key eval.questions = '': name the questions (--questions FILE)")
    for what, path in (("eval.questions", cfg.eval.questions), ("--training-metrics", args.training_metrics)):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{what} {path}: file not found")


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


def load_policy(cfg):
    """(model, tokenizer) of model.path / model.tokenizer on one device (the stack's policy loader)."""
    from egrpo_jax.assembly import build_policy
    from egrpo_jax.mesh import single_device_mesh

    return build_policy(cfg, single_device_mesh())


def run(args: argparse.Namespace) -> int:
    cfg = run_config(args, flag_overrides(args))
    _check(cfg, args)
    from tqdm import tqdm

    from egrpo_jax.assembly import build_tools
    from egrpo_jax.data.io import load_questions
    from egrpo_jax.eval import analysis, report, runner

    e = cfg.eval
    records = load_questions(e.questions)[: e.limit or None]
    training_rows = analysis.read_metrics_jsonl(args.training_metrics) if args.training_metrics else None
    model, tokenizer = load_policy(cfg)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # progress per finished rollout; the dump gets each question as soon as its k rollouts end
    bar = tqdm(total=len(records) * e.k, desc="eval", unit="rollout", file=sys.stderr, dynamic_ncols=True)
    correct = [0, 0]
    with (out / "trajectories.jsonl").open("w") as dump, build_tools(cfg, tokenizer) as tools:

        def on_question(_i, trajs, scores):
            for t in trajs:
                dump.write(json.dumps(_trajectory_row(t)) + "\n")
            dump.flush()
            correct[0] += sum(s.correct for s in scores)
            correct[1] += len(scores)
            bar.set_postfix(correct=f"{correct[0]}/{correct[1]}")

        try:
            s = runner.evaluate_to_report(
                cfg, model, tokenizer, records, tools, str(out), title=args.title or f"Evaluation of {cfg.model.path}",
                meta={"model": cfg.model.path, "questions_file": e.questions,
                      "search": cfg.search.index_dir or cfg.search.url or cfg.data.corpus},
                training_rows=training_rows, on_question=on_question, on_progress=bar.update)
        finally:
            bar.close()
    c = s["entity_comparison"]
    print(
        f"{s['questions']} questions x {e.k}: pass@1 {100 * s['pass@1']:.1f}%  "
        f"pass@{e.k} {100 * s[f'pass@{e.k}']:.1f}%  tool calls {s['tool_calls/mean']:.2f}  "
        f"format errors {100 * s['format_error_rate']:.1f}%  entity match correct/wrong "
        f"{report.format_value('entity_match/', s['entity_match/correct'])}/"
        f"{report.format_value('entity_match/', s['entity_match/wrong'])}  "
        f"correct-higher {c['correct_higher']} vs {c['wrong_higher']}"
    )
    print(f"report: {out / report.REPORT_FILE}")
    return 0
