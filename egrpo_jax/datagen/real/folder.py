"""The real-world data folder: questions -> corpus -> BM25 index -> oracle SFT demos -> data.json.

One builder for `egrpo gen-data --world real` and the real-world demo pipeline (configs/real_cpu.py).
It writes the same files as the synthetic builder (datagen/synth/build.write_data), so the SFT and RL
runs read both alike; there is no tokenizer (the real-world set is for pretrained policies, which
bring their own). The demos search the BM25 index written here, with the tool settings given: the
RL run's search.* must equal them (the demos hold the exact tool text).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time

from egrpo_jax.data.io import write_corpus, write_jsonl, write_questions
from egrpo_jax.datagen.real.build import RealConfig, RealData, build_real
from egrpo_jax.datagen.real.oracle import check_demo_config, make_demos
from egrpo_jax.datagen.synth.build import STATS_FILE, DataPaths
from egrpo_jax.datagen.synth.oracle import DemoConfig
from egrpo_jax.tools.bm25 import Bm25Index
from egrpo_jax.tools.registry import ToolConfig

# Tool settings of the real-world demos when nothing else is said: one hit of 400 characters
# shows the stated fact for ~91% of hops (a country profile's first sentences hold capital, chief of
# state, head of government and language), and keeps a 3-hop rollout near 700 SmolLM2 tokens.
REAL_TOOLS = ToolConfig(topk=1, snippet_chars=400)


def build_real_data(out_dir: str, real: RealConfig | None = None, demos: DemoConfig | None = None,
                    tools: ToolConfig = REAL_TOOLS, *, data: RealData | None = None) -> DataPaths:
    """Write <out>/{train,dev,test,corpus,sft_demos}.jsonl, <out>/index (BM25) and, last, data.json.
    `data` is an already built set (else build_real(real))."""
    t0 = time.perf_counter()
    demos = demos or DemoConfig(recovered_rate=0.0, wrong_rate=0.0)
    check_demo_config(demos)  # before the build: a bad rate is a config error, not a late failure
    data = data or build_real(real)
    index = Bm25Index.build(data.corpus)
    splits, demo_rows, dropped = make_demos(data.splits, index, tools, demos)
    if not splits["train"] or not splits["test"]:
        raise ValueError(f"real-world set: no train/test question is answerable with tools {tools}")
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, f"{name}.jsonl") for name in splits}
    for name, recs in splits.items():
        write_questions(paths[name], recs)
    corpus_path = os.path.join(out_dir, "corpus.jsonl")
    write_corpus(corpus_path, data.corpus)
    demos_path = os.path.join(out_dir, "sft_demos.jsonl")
    write_jsonl(demos_path, demo_rows)
    index_dir = os.path.join(out_dir, "index")
    index.save(index_dir)
    kinds = collections.Counter(d["kind"] for d in demo_rows)
    stats = {
        "world": "real", "documents": len(data.corpus),
        **{f"questions/{k}": len(v) for k, v in splits.items()},
        "questions/dropped_unstated": data.dropped, "questions/dropped_unanswerable": dropped,
        "demos": len(demo_rows), "demos/correct": sum(bool(d["correct"]) for d in demo_rows),
        **{f"demos/{k}": n for k, n in sorted(kinds.items())},
        "tools": f"topk={tools.topk} snippet_chars={tools.snippet_chars}",
        "seconds": round(data.seconds + time.perf_counter() - t0, 3),
    }
    out = DataPaths(out_dir, paths["train"], paths["dev"], paths["test"], corpus_path, demos_path, index_dir, "", stats)
    with open(os.path.join(out_dir, STATS_FILE), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(out), f, indent=2)
    return out
