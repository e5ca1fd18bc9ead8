"""Build a whole synthetic dataset: world -> corpus -> questions -> splits -> SFT demos."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from egrpo_jax.data.io import write_corpus, write_jsonl, write_questions
from egrpo_jax.data.schema import Document, QARecord
from egrpo_jax.datagen.synth.corpus import build_corpus
from egrpo_jax.datagen.synth.oracle import DemoConfig, Oracle, make_demos
from egrpo_jax.datagen.synth.questions import make_questions, split_questions, with_gold_docs
from egrpo_jax.datagen.synth.world import World, WorldConfig, build_world
from egrpo_jax.tools.registry import ToolConfig

# Tool settings of the demos: small so a tiny model's context holds a 4-hop rollout.
# They must match the RL run's tools config (the demos contain the exact tool text).
DEMO_TOOLS = ToolConfig(topk=3, snippet_chars=200)


@dataclasses.dataclass
class SyntheticData:
    world: World
    corpus: list[Document]
    doc_of: dict[str, str]  # node id -> doc id
    splits: dict[str, list[QARecord]]
    demos: list[dict[str, Any]]
    seconds: float

    def write(self, out_dir: str) -> dict[str, str]:
        paths = {name: os.path.join(out_dir, f"{name}.jsonl") for name in self.splits}
        for name, recs in self.splits.items():
            write_questions(paths[name], recs)
        paths["corpus"] = os.path.join(out_dir, "corpus.jsonl")
        write_corpus(paths["corpus"], self.corpus)
        paths["demos"] = os.path.join(out_dir, "sft_demos.jsonl")
        write_jsonl(paths["demos"], self.demos)
        return paths


def build_synthetic(
    config: WorldConfig | None = None,
    demo_config: DemoConfig | None = None,
    tools: ToolConfig = DEMO_TOOLS,
    *,
    demo_splits: tuple[str, ...] = ("train",),
) -> SyntheticData:
    """Everything for one seed. Demos (one per question of `demo_splits`) use a BM25 index of the corpus."""
    from egrpo_jax.tools.bm25 import Bm25Index

    t0 = time.perf_counter()
    config = config or WorldConfig()
    world = build_world(config)
    corpus, doc_of = build_corpus(world)
    splits = split_questions(world, with_gold_docs(make_questions(world), doc_of))
    demo_config = demo_config or DemoConfig(seed=config.seed)
    oracle = Oracle(world, doc_of, Bm25Index.build(corpus), tools)
    try:
        demos = make_demos(oracle, [q for s in demo_splits for q in splits[s]], demo_config)
    finally:
        oracle.close()
    return SyntheticData(world, corpus, doc_of, splits, demos, time.perf_counter() - t0)
