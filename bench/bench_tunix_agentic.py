"""`tunix_agentic`: the demo's multi-turn search workload through our agent loop vs Tunix's own agentic
rollout path (google-tunix 0.1.7, in its own venv as in bench_tunix.py).

    PYTHONPATH=. .venv/bin/python -m bench.bench_tunix_agentic [--run runs/demo] [--quick]

Same checkpoint (the `make demo` RL policy <run>/rl/ckpt, exported with save_pretrained and loaded by
Tunix's llama3 safetensors loader), the same N held-out questions (<run>/data/test.jsonl; 64, --quick
16), greedy, the demo config's limits (max_tool_calls, max_turn_tokens, max_total_tokens, prompt
style) and one search server (`egrpo serve-search` over <run>/data/index) that both stacks' search
tools call and whose hits both format as tools/search.py does.
- ours: agent.loop.run_rollouts over `--slots` engine rows (the demo's segment_steps), ToolSet over
  the http backend;
- tunix: bench/tunix_agentic_worker.py: RolloutOrchestrator (max_concurrency = --slots) ->
  TrajectoryCollectEngine -> ToolAgent / ToolEnvironment, VanillaRollout (see its docstring).
Each stack runs once untimed (every shape compiled), then `--repeats` timed passes, arms alternated;
ours_s / tunix_s = median wall seconds for all N rollouts, ratio = tunix_s / ours_s. Agreement: per
rollout, whether Tunix's token record (prompt + conversation tokens) equals ours, the first index
where they differ, whether tool calls and answer agree, and whether every context Tunix's sampler
was fed (it re-tokenises the whole chat each turn) is a prefix of our token stream.
Sets (with --quick: writes bench/results/bench_tunix_agentic_quick.json instead)
the `tunix_agentic` section of bench/results/bench_rollout.json (bench/rollout_results.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.bench_rollout import _agent
from bench.bench_tunix import ensure_venv
from bench.rollout_results import set_section

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def _first_diff(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (None: identical)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _tunix_actions(messages: list[dict]) -> tuple[list, str | None, list[str]]:
    """(tool calls, answer, tool response texts) of a Tunix conversation, parsed as our loop parses."""
    from egrpo_jax.agent.parse import parse_segment

    calls, answer, responses = [], None, []
    for m in messages:
        if m["role"] == "assistant":
            seg = parse_segment(m["content"], ("search", "visit"))
            if seg.call is not None:
                calls.append((seg.call.name, seg.call.arguments))
            answer = seg.answer if seg.answer is not None else answer
        elif m["role"] == "tool":
            responses.append(m["content"])
    return calls, answer, responses


def _agreement(ours, tunix) -> dict:
    rows = []
    for o, t in zip(ours, tunix, strict=True):
        calls, answer, responses = _tunix_actions(t["messages"])
        ctx_ok = all(ctx + out == o.tokens[: len(ctx) + len(out)] for ctx, out in t["calls"])
        rows.append({"diff": _first_diff(o.tokens, t["tokens"]), "ctx": ctx_ok,
                     "actions": calls == [(c.name, c.arguments) for c in o.tool_calls] and answer == o.answer,
                     "responses": responses == [c.response for c in o.tool_calls]})
    diffs = [r["diff"] for r in rows if r["diff"] is not None]
    return {
        "rollouts": len(rows),
        "tokens_identical": sum(r["diff"] is None for r in rows),
        "first_divergence_min": min(diffs) if diffs else None,
        "contexts_are_our_prefixes": sum(r["ctx"] for r in rows),
        "tool_calls_and_answer_agree": sum(r["actions"] for r in rows),
        "tool_responses_identical": sum(r["responses"] for r in rows),
    }


class _Worker:
    """The Tunix worker process (its venv, PYTHONPATH stripped), one pass per `run()`."""

    def __init__(self, py: str, spec_path: str):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
        self.p = subprocess.Popen([py, os.path.join(HERE, "tunix_agentic_worker.py"), spec_path], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._read()

    def _read(self):
        for line in self.p.stdout:
            if line.startswith("@@"):
                return None if line.startswith("@@ready") else json.loads(line[2:])
        raise SystemExit(f"tunix worker exited ({self.p.wait()}); its stderr is above")

    def run(self) -> dict:
        self.p.stdin.write("run\n")
        return self._read()

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(timeout=60)


def _serve(index: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, "-m", "egrpo_jax.cli", "serve-search", "--index", index, "--port", "0"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if "http://" not in line:
        p.kill()
        raise SystemExit(f"egrpo serve-search did not start: {line!r}")
    return p, line.split(" on ")[1].split()[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/demo", help="a `make demo` run folder (rl/ckpt, data/index, data/test.jsonl)")
    ap.add_argument("--quick", action="store_true", help="N = 16, one timed repeat (unless --repeats)")
    ap.add_argument("--rollouts", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=None, help="timed passes per stack (default 3, --quick 1)")
    ap.add_argument("--slots", type=int, default=16, help="our engine rows = Tunix's max_concurrency")
    ap.add_argument("--dump", default="", help="write both stacks' last rollouts (tokens, text) to this JSON file")
    args = ap.parse_args(argv)
    n = 16 if args.quick else args.rollouts
    repeats = args.repeats or (1 if args.quick else 3)
    load_start = os.getloadavg()
    py = ensure_venv()

    from egrpo_jax.agent.host_text import encode_prompt
    from egrpo_jax.agent.loop import run_rollouts
    from egrpo_jax.agent.template import TOOL_SCHEMAS, system_prompt
    from egrpo_jax.assembly import build_engine
    from egrpo_jax.data.io import load_questions
    from egrpo_jax.e2e.settings import load_pipeline_config
    from egrpo_jax.models.loading import save_pretrained
    from egrpo_jax.policy import load_policy
    from egrpo_jax.sampling.api import SamplingParams
    from egrpo_jax.tools.registry import ToolConfig, ToolSet, open_backend

    pc = load_pipeline_config(os.path.join(os.path.dirname(HERE), "configs", "demo_cpu.py"))
    a, t = pc.rl.agent, pc.pipeline.tools
    ckpt = os.path.join(args.run, "rl", "ckpt")
    if not os.path.isfile(os.path.join(ckpt, "policy.json")):
        raise SystemExit(f"{ckpt}: no trained policy (policy.json); run `make demo` (or pass --run DIR)")
    loaded = load_policy(ckpt)
    tok = loaded.tokenizer
    questions = load_questions(os.path.join(args.run, "data", "test.jsonl"))[:n]
    tool_cfg = ToolConfig(topk=t.topk, snippet_chars=t.snippet_chars, page_tokens=t.page_tokens)
    cfg = _agent(pc, a.segment_steps)
    server, url = _serve(os.path.join(args.run, "data", "index"))
    tmp = tempfile.TemporaryDirectory(prefix="bench_tunix_agentic_")
    worker = None
    try:
        tools = ToolSet(open_backend(url), tool_cfg, tokenizer=tok)
        engine = build_engine(loaded.model, tok, num_rows=args.slots, max_len=a.max_total_tokens,
                              sampling=SamplingParams(temperature=0.0))
        spec = {
            "hf_dir": save_pretrained(loaded.model, tok, out_dir=os.path.join(tmp.name, "hf")),
            "config": loaded.model.cfg.to_dict(), "search_url": url, "search_schema": TOOL_SCHEMAS["search"],
            "tools": {"topk": tool_cfg.topk, "snippet_chars": tool_cfg.snippet_chars,
                      "max_queries": tool_cfg.max_queries, "max_query_chars": tool_cfg.max_query_chars},
            "system_prompt": system_prompt(a.prompt_style, tool_cfg.enabled),
            "questions": [{"question": q.question,
                           "prompt_len": len(encode_prompt(tok, q.question, style=a.prompt_style, tools=tool_cfg.enabled))}
                          for q in questions],
            "max_tool_calls": a.max_tool_calls, "max_turn_tokens": a.max_turn_tokens,
            "max_total_tokens": a.max_total_tokens, "cache_size": a.max_total_tokens + a.max_turn_tokens,
            "eos_ids": [int(i) for i in tok.eos_ids], "max_concurrency": args.slots,
            "stop_tags": {s: tok.encode(s)[0] for s in ("</tool_call>", "</answer>")},
        }
        assert all(len(tok.encode(s)) == 1 for s in spec["stop_tags"]), "stop tags must be single tokens"
        spec_path = os.path.join(tmp.name, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)

        def ours():
            t0 = time.perf_counter()
            trajs, _ = run_rollouts(engine, tok, questions, tools, cfg)
            return time.perf_counter() - t0, trajs

        print(f"warm-up (compiles): ours, then tunix; N = {n}", file=sys.stderr, flush=True)
        ours()
        worker = _Worker(py, spec_path)
        worker.run()
        walls = {"ours": [], "tunix": []}
        for r in range(repeats):
            w, our_trajs = ours()
            walls["ours"].append(w)
            tx = worker.run()
            walls["tunix"].append(tx["wall_s"])
            print(f"repeat {r + 1}/{repeats}: ours {w:.3f} s, tunix {tx['wall_s']:.3f} s", file=sys.stderr, flush=True)
        tools.close()
    finally:
        if worker is not None:
            worker.close()
        server.terminate()
        server.wait(timeout=30)
        tmp.cleanup()
    load_end = os.getloadavg()

    ours_s, tunix_s = statistics.median(walls["ours"]), statistics.median(walls["tunix"])
    tr = tx["rollouts"]
    res = {
        "tunix": "google-tunix==0.1.7", "run": args.run, "rollouts": n, "slots": args.slots,
        "segment_steps": cfg.segment_steps, "repeats": repeats, "sampling": "greedy",
        "limits": {"max_tool_calls": a.max_tool_calls, "max_turn_tokens": a.max_turn_tokens,
                   "max_total_tokens": a.max_total_tokens},
        "ours_s": round(ours_s, 3), "tunix_s": round(tunix_s, 3), "ratio": round(tunix_s / ours_s, 2),
        "walls_s": {k: [round(x, 3) for x in v] for k, v in walls.items()},
        "ours_rollouts_per_s": round(n / ours_s, 2), "tunix_rollouts_per_s": round(n / tunix_s, 2),
        "ours_model_tokens": sum(x.num_model_tokens for x in our_trajs),
        "tunix_model_tokens": sum(len(out) for x in tr for _, out in x["calls"]),
        "ours_tool_calls_per_rollout": round(sum(x.num_tool_calls for x in our_trajs) / n, 3),
        "tunix_tool_calls_per_rollout": round(sum(m["role"] == "tool" for x in tr for m in x["messages"]) / n, 3),
        "tunix_model_calls": sum(len(x["calls"]) for x in tr),
        "ours_prefill_tokens": sum(len(x.tokens) - x.num_model_tokens for x in our_trajs),  # prompt + tool responses
        "tunix_prefill_tokens": sum(len(ctx) for x in tr for ctx, _ in x["calls"]),
        "tunix_prefill_tokens_padded": sum(max(64, 1 << (len(ctx) - 1).bit_length()) for x in tr for ctx, _ in x["calls"]),
        "ours_status": {s: sum(x.status == s for x in our_trajs) for s in sorted({x.status for x in our_trajs})},
        "tunix_status": {s: sum(x["status"] == s for x in tr) for s in sorted({x["status"] for x in tr})},
        "agreement": _agreement(our_trajs, tr),
        "load_avg_start": [round(x, 2) for x in load_start], "load_avg_end": [round(x, 2) for x in load_end],
    }
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump({"ours": [{"tokens": x.tokens, "text": x.text, "status": x.status} for x in our_trajs],
                       "tunix": tr}, f)
    g = res["agreement"]
    rows = [("wall s (median)", res["ours_s"], res["tunix_s"]),
            ("rollouts/s", res["ours_rollouts_per_s"], res["tunix_rollouts_per_s"]),
            ("model tokens generated", res["ours_model_tokens"], res["tunix_model_tokens"]),
            ("tool calls / rollout", res["ours_tool_calls_per_rollout"], res["tunix_tool_calls_per_rollout"]),
            ("status", res["ours_status"], res["tunix_status"]),
            ("walls s", res["walls_s"]["ours"], res["walls_s"]["tunix"]),
            ("tokens prefilled (tunix: whole context every turn)", res["ours_prefill_tokens"], res["tunix_prefill_tokens"]),
            ("... padded to Tunix's prompt buckets", "-", res["tunix_prefill_tokens_padded"]),
            ("model calls", "-", res["tunix_model_calls"])]
    print(f"\ntunix_agentic: N = {n} rollouts, greedy, {args.slots} engine rows / max_concurrency, median of "
          f"{repeats}; load average {tuple(res['load_avg_start'])} -> {tuple(res['load_avg_end'])}")
    print("| | ours | tunix |\n|---|---|---|")
    for name, x, y in rows:
        print(f"| {name} | {x} | {y} |")
    print(f"| ratio tunix_s / ours_s | {res['ratio']}x (goal >= 3x) | |")
    print(f"\n| agreement (of {n}) | rollouts |\n|---|---|")
    for k in ("tokens_identical", "tool_calls_and_answer_agree", "tool_responses_identical",
              "contexts_are_our_prefixes", "first_divergence_min"):
        print(f"| {k} | {g[k]} |")
    if args.quick:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "bench_tunix_agentic_quick.json"), "w") as f:
            json.dump(res, f, indent=2)
        print("wrote bench/results/bench_tunix_agentic_quick.json")
    else:
        set_section("tunix_agentic", res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
