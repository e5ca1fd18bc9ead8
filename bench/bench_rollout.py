"""Rollout throughput: lock-step waves vs rollouts streamed through engine rows (agent/loop.py).

A trained demo policy (the RL checkpoint of a `make demo` run folder) answers held-out questions
of its world through the real agent loop, real BM25 tools and the jitted engine, greedy, one
rollout per question: its turn counts are uneven by nature (the policy decides when to answer).

    PYTHONPATH=. .venv/bin/python -m bench.bench_rollout [--run runs/demo] [--quick]

Arms, N rollouts through S engine rows:
- `sync`: the old loop's schedule: waves of S rollouts, each wave in lock-step turns until its
  slowest rollout ends (run_rollouts per wave, segment_steps 0).
- `continuous`: all N rollouts through the same S rows (run_rollouts once): a finished row takes
  the next rollout, a row waiting for its tool leaves the decode batch (local BM25 calls are
  waited for, so the row rejoins the next block); decode blocks of at most `segment_steps` steps,
  returning early once a quarter of the rows ended.
Each arm is run once untimed (compilation), then timed `--repeats` times, arms interleaved so
load drift hits both. tok/s = model-written tokens / wall seconds; `useful` = the share of decode row-steps that wrote
a token (Engine.decode_stats). `tokens_identical`: greedy
rollouts of the two arms are token for token the same. Sets the `continuous` section of
bench/results/bench_rollout.json (bench/rollout_results.py; its ratio: uneven, S = 16) or, with
--quick, writes bench_rollout_quick.json, with the load average at start and end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

from bench.rollout_results import set_section

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(run: str):
    from egrpo_jax.data.io import load_questions
    from egrpo_jax.policy import load_policy
    from egrpo_jax.tools.registry import ToolConfig, ToolSet, open_backend

    ckpt = os.path.join(run, "rl", "ckpt")
    data = os.path.join(run, "data")
    if not os.path.isfile(os.path.join(ckpt, "policy.json")):
        raise SystemExit(f"{ckpt}: no trained policy (policy.json); run `make demo` (or pass --run DIR)")
    loaded = load_policy(ckpt)
    from egrpo_jax.e2e.settings import load_pipeline_config

    pc = load_pipeline_config(os.path.join(os.path.dirname(HERE), "configs", "demo_cpu.py"))
    t = pc.pipeline.tools  # the demo's tools, as its RL run used them
    tools = ToolSet(open_backend(os.path.join(data, "index")),
                    ToolConfig(topk=t.topk, snippet_chars=t.snippet_chars, page_tokens=t.page_tokens),
                    tokenizer=loaded.tokenizer)
    questions = load_questions(os.path.join(data, "test.jsonl"))
    return loaded.model, loaded.tokenizer, tools, questions, pc


def _uneven(docs_index: str):
    """A random policy over whole actions that thinks in whitespace first: each turn writes ~20
    spaces, then a search call (p ~ 0.75) or the answer. Sampled at T = 1, so turn lengths and
    tool-call counts are uneven (capped at 6 calls); real engine, loop and BM25 tools."""
    from egrpo_jax.mesh import single_device_mesh
    from egrpo_jax.models.config import tiny_config
    from egrpo_jax.models.sharding import create_model
    from egrpo_jax.testing.action_policy import fix_next_token_distribution
    from egrpo_jax.testing.scripted import ACTION_ANSWER, ACTION_CALL, ActionTokenizer
    from egrpo_jax.tools.registry import ToolConfig, ToolSet, open_backend

    tok = ActionTokenizer()
    model = create_model(tiny_config("qwen2", vocab_size=tok.vocab_size), mesh=single_device_mesh(), seed=0)
    fix_next_token_distribution(model, {ord(" ") + 3: 0.95, ACTION_CALL: 0.0375, ACTION_ANSWER: 0.0125})
    tools = ToolSet(open_backend(docs_index), ToolConfig(topk=1, snippet_chars=48), tokenizer=tok)
    return model, tok, tools


def _agent(pc, steps: int):
    from egrpo_jax.assembly import agent_config

    return dataclasses.replace(agent_config(pc.rl), group_size=1, seed=0, segment_steps=steps)


def _run_arm(arm, engine, tok, tools, questions, cfg, slots):
    from egrpo_jax.agent.loop import run_rollouts

    engine.decode_stats = dict.fromkeys(engine.decode_stats, 0)  # this arm's decode work only
    t0 = time.perf_counter()
    trajs, times = [], {"device": 0.0, "tools": 0.0, "tools_wait": 0.0}
    if arm == "sync":
        for i in range(0, len(questions), slots):
            tr, m = run_rollouts(engine, tok, questions[i:i + slots], tools, cfg, first_stream=i)
            trajs += tr
            for k in times:
                times[k] += m[f"time/{k}_s"]
    else:
        trajs, m = run_rollouts(engine, tok, questions, tools, cfg)
        times = {k: m[f"time/{k}_s"] for k in times}
    st = engine.decode_stats
    times["decode_calls"], times["decode_steps"] = st["calls"], st["steps"]
    times["useful"] = st["tokens"] / max(st["row_steps"], 1)  # row-steps that wrote a token
    return time.perf_counter() - t0, trajs, times


def _workloads(args):
    """(name, model, tokenizer, tools, questions, agent config for segment_steps, sampling, max_len)."""
    from egrpo_jax.agent.config import AgentConfig
    from egrpo_jax.data.io import write_corpus
    from egrpo_jax.data.schema import Document
    from egrpo_jax.sampling.api import SamplingParams

    out = []
    if args.workload in ("uneven", "both"):
        import tempfile

        corpus = os.path.join(tempfile.mkdtemp(prefix="bench_rollout_"), "corpus.jsonl")
        write_corpus(corpus, [Document(f"d{i}", f"Place {i}", f"Place {i} lies on river {i % 7} near town {i % 5}.")
                              for i in range(200)])
        model, tok, tools = _uneven(corpus)
        qs = [(f"q{i}", f"Where is place {i}?") for i in range(args.n)]

        def cfg(steps):
            return AgentConfig(group_size=1, prompt_style="short", max_tool_calls=6, max_total_tokens=1024,
                               seed=0, segment_steps=steps)

        out.append(("uneven", model, tok, tools, qs, cfg, SamplingParams(temperature=1.0), 1024))
    if args.workload in ("demo", "both"):
        model, tok, tools, qs, pc = _load(args.run)
        if len(qs) < args.n:
            raise SystemExit(f"{args.run}/data/test.jsonl: {len(qs)} questions, {args.n} rollouts need as many")
        out.append(("demo", model, tok, tools, qs[: args.n], lambda steps: _agent(pc, steps),
                    SamplingParams(temperature=0.0), pc.rl.agent.max_total_tokens))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=("uneven", "demo", "both"), default="uneven",
                   help="uneven: a random action policy, 0-6 calls (no files needed); demo: a `make demo` policy")
    p.add_argument("--run", default="runs/demo", help="the `make demo` run folder of --workload demo")
    p.add_argument("--quick", action="store_true", help="N = 32, S = 8, one repeat (under 3 minutes)")
    p.add_argument("--rollouts", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--segment-steps", type=int, default=16, help="decode steps per block of the continuous arm")
    args = p.parse_args(argv)
    from egrpo_jax.assembly import build_engine
    from egrpo_jax.sampling.engine import Engine

    load_start = os.getloadavg()
    args.n = 32 if args.quick else args.rollouts
    slot_list = [8] if args.quick else [16, args.n]
    repeats = 1 if args.quick else args.repeats
    results = {"rollouts": args.n, "segment_steps": args.segment_steps, "repeats": repeats,
               "load_avg_start": load_start, "continuous": []}
    for name, model, tok, tools, questions, agent, sampling, max_len in _workloads(args):
        with tools:
            for slots in slot_list:
                if name == "demo":
                    engine = build_engine(model, tok, num_rows=slots, max_len=max_len, sampling=sampling)
                else:  # the action policy's stops are its two action tokens
                    from egrpo_jax.testing.scripted import ACTION_ANSWER, ACTION_CALL

                    engine = Engine(model, num_rows=slots, max_len=max_len, sampling=sampling,
                                    stop_sequences=[[ACTION_CALL], [ACTION_ANSWER]], eos_ids=tok.eos_ids)
                cfgs = {"sync": agent(0), "continuous": agent(args.segment_steps)}
                walls = {a: [] for a in cfgs}
                outs = {}
                for a, cfg in cfgs.items():  # warm-up: every executable compiled before timing
                    _run_arm(a, engine, tok, tools, questions, cfg, slots)
                for _ in range(repeats):
                    for a, cfg in cfgs.items():
                        wall, trajs, times = _run_arm(a, engine, tok, tools, questions, cfg, slots)
                        walls[a].append(wall)
                        outs[a] = (trajs, times)
                sync_t = outs["sync"][0]
                model_tokens = sum(t.num_model_tokens for t in sync_t)
                calls = [t.num_tool_calls for t in sync_t]
                row = {
                    "workload": name, "slots": slots, "sampling": dataclasses.asdict(sampling),
                    "model_tokens": model_tokens,
                    "tool_calls": {str(c): calls.count(c) for c in sorted(set(calls))},
                    "host_tokens_per_call": round(sum(t.num_host_tokens for t in sync_t) / max(sum(calls), 1), 1),
                    "sync_s": round(statistics.median(walls["sync"]), 3),
                    "continuous_s": round(statistics.median(walls["continuous"]), 3),
                    "tokens_identical": [t.tokens for t in sync_t] == [t.tokens for t in outs["continuous"][0]],
                    "sync_times_s": {k: round(v, 3) for k, v in outs["sync"][1].items()},
                    "continuous_times_s": {k: round(v, 3) for k, v in outs["continuous"][1].items()},
                }
                row["sync_tok_s"] = round(model_tokens / row["sync_s"], 1)
                row["continuous_tok_s"] = round(model_tokens / row["continuous_s"], 1)
                row["ratio"] = round(row["sync_s"] / row["continuous_s"], 3)
                results["continuous"].append(row)
                print(f"{name} S={slots}: sync {row['sync_tok_s']} tok/s, continuous {row['continuous_tok_s']} "
                      f"tok/s, ratio {row['ratio']}x, tokens identical {row['tokens_identical']}", file=sys.stderr)
    results["load_avg_end"] = os.getloadavg()
    print(f"\nrollouts: {args.n}; decode blocks of {args.segment_steps} steps; load average "
          f"{tuple(round(x, 2) for x in load_start)} -> {tuple(round(x, 2) for x in results['load_avg_end'])}")
    print("| workload | S | model tokens | tool calls (calls: rollouts) | sync tok/s | continuous tok/s | ratio | "
          "useful row-steps sync / continuous | decode calls | identical |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results["continuous"]:
        a, b = r["sync_times_s"], r["continuous_times_s"]
        print(f"| {r['workload']} | {r['slots']} | {r['model_tokens']} | {r['tool_calls']} | {r['sync_tok_s']} | "
              f"{r['continuous_tok_s']} | {r['ratio']}x | {a['useful']:.0%} / {b['useful']:.0%} | "
              f"{a['decode_calls']} / {b['decode_calls']} | {r['tokens_identical']} |")
    if args.quick:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", "bench_rollout_quick.json"), "w") as f:
            json.dump(results, f, indent=2)
        print("wrote bench/results/bench_rollout_quick.json")
        return 0
    goal = [r for r in results["continuous"] if r["workload"] == "uneven" and r["slots"] == 16]
    if not goal:
        print("no uneven S = 16 row (the goal's ratio): the continuous section of bench_rollout.json is left as it was")
        return 0
    set_section("continuous", dict(results, ratio=goal[0]["ratio"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
