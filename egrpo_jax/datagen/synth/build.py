"""The synthetic data folder: world -> corpus -> questions -> splits -> SFT demos -> BPE -> BM25 index.

One builder for `egrpo gen-data --world synthetic` and the demo / replicate pipelines. Demos are made
question by question so that a question whose facts the oracle cannot see with the chosen (small)
tool settings is dropped from every split instead of failing the build; the count is reported. The
same ToolConfig must be used for the demos and later for the rollouts (the demos hold the tool text).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

from tokenizers import AddedToken

from egrpo_jax.agent.template import system_prompt
from egrpo_jax.config import PROMPT_STYLES
from egrpo_jax.data.io import write_corpus, write_jsonl, write_questions
from egrpo_jax.data.schema import Document, QARecord
from egrpo_jax.datagen.bpe import train_bpe
from egrpo_jax.datagen.synth.corpus import build_corpus
from egrpo_jax.datagen.synth.oracle import PERFECT, DemoConfig, Oracle, demos_over_splits
from egrpo_jax.datagen.synth.questions import make_questions, split_questions, with_gold_docs
from egrpo_jax.datagen.synth.world import World, WorldConfig, build_world
from egrpo_jax.tools.bm25 import Bm25Index
from egrpo_jax.tools.registry import ToolConfig

# The tool settings of the demos when nothing else is said: small, so a tiny model's context holds
# a multi-hop rollout. The RL run's search.topk / search.snippet_chars must equal them.
DEMO_TOOLS = ToolConfig(topk=3, snippet_chars=200)
STATS_FILE = "data.json"  # written last: its presence means the folder is complete


@dataclasses.dataclass
class SyntheticData:
    world: World
    corpus: list[Document]
    doc_of: dict[str, str]  # node id -> doc id
    splits: dict[str, list[QARecord]]  # answerable questions only
    demos: list[dict[str, Any]]  # one per train question
    dropped: int  # questions the oracle could not answer with these tool settings
    seconds: float


@dataclasses.dataclass
class DataPaths:
    root: str
    train: str
    dev: str
    test: str
    corpus: str
    demos: str
    index: str
    tokenizer: str  # "" when no tokenizer was trained (a policy that brings its own)
    stats: dict
    rl: str = ""  # questions held out of the demos for RL (WorldConfig.rl_fraction); "" = none

    @property
    def rl_questions(self) -> str:
        """The questions RL samples: the rl split when the world has one, else train."""
        return self.rl or self.train


@dataclasses.dataclass(frozen=True)
class BpeSettings:
    vocab_size: int = 1024
    atomic_prompt: bool = True  # the fixed system prompt becomes one token (see train_data_tokenizer)


def build_synthetic(world: WorldConfig | None = None, demos: DemoConfig | None = None,
                    tools: ToolConfig = DEMO_TOOLS) -> SyntheticData:
    """Everything for one seed, in memory; demos use a BM25 index of the corpus through the real tools."""
    t0 = time.perf_counter()
    world = world or WorldConfig()
    demos = demos or DemoConfig(seed=world.seed)
    w = build_world(world)
    corpus, doc_of = build_corpus(w)
    splits = split_questions(w, with_gold_docs(make_questions(w), doc_of))
    oracle = Oracle(w, doc_of, Bm25Index.build(corpus), tools)

    def demo(q, kind, rng):
        oracle.demo(q, PERFECT)  # the perfect path must exist for every kept question, whatever the kind
        return oracle.demo(q, kind, rng)

    try:
        keep, out, dropped = demos_over_splits(splits, demos, demo, "demo")
    finally:
        oracle.close()
    if not keep["train"] or not keep["test"]:
        raise ValueError(f"world {world}: no answerable train/test questions with tools {tools}")
    return SyntheticData(w, corpus, doc_of, keep, out, dropped, time.perf_counter() - t0)


def write_data(data: SyntheticData, out_dir: str, *, bpe: BpeSettings | None = BpeSettings()) -> DataPaths:
    """Write <out>/{train,dev,test,corpus,sft_demos}.jsonl, <out>/index (BM25), <out>/tokenizer (a BPE,
    unless `bpe` is None) and, last, <out>/data.json."""
    t0 = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, f"{name}.jsonl") for name in data.splits}
    for name, recs in data.splits.items():
        write_questions(paths[name], recs)
    corpus_path = os.path.join(out_dir, "corpus.jsonl")
    write_corpus(corpus_path, data.corpus)
    demos_path = os.path.join(out_dir, "sft_demos.jsonl")
    write_jsonl(demos_path, data.demos)
    index_dir = os.path.join(out_dir, "index")
    Bm25Index.build(data.corpus).save(index_dir)
    tok_dir = ""
    if bpe is not None:
        tok_dir = os.path.join(out_dir, "tokenizer")
        train_data_tokenizer(data.corpus, data.demos, bpe).save(tok_dir)
    w = data.world
    stats = {
        "entities": len(w.nodes), "distractors": len(w.distractors), "documents": len(data.corpus),
        **{f"questions/{k}": len(v) for k, v in data.splits.items()}, "questions/dropped_unanswerable": data.dropped,
        "demos": len(data.demos), "demos/correct": sum(bool(d["correct"]) for d in data.demos),
        "seconds": round(data.seconds + time.perf_counter() - t0, 3),
    }
    out = DataPaths(out_dir, paths["train"], paths["dev"], paths["test"], corpus_path, demos_path, index_dir,
                    tok_dir, stats, paths.get("rl", ""))
    with open(os.path.join(out_dir, STATS_FILE), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(out), f, indent=2)
    return out


def build_data(out_dir: str, world: WorldConfig | None = None, demos: DemoConfig | None = None,
               tools: ToolConfig = DEMO_TOOLS, *, bpe: BpeSettings | None = BpeSettings()) -> DataPaths:
    """build_synthetic + write_data: the whole folder."""
    return write_data(build_synthetic(world, demos, tools), out_dir, bpe=bpe)


def existing_data(out_dir: str) -> DataPaths | None:
    """The DataPaths of a folder write_data finished earlier (None if there is none)."""
    path = os.path.join(out_dir, STATS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return DataPaths(**json.load(f))


def train_data_tokenizer(corpus, demos, bpe: BpeSettings):
    """A byte-level BPE (datagen.bpe) on the corpus, the questions and the demos.

    With `atomic_prompt` the fixed system prompt (both prompt styles) becomes one added token: it
    is host text that every rollout starts with and carries no loss, so spending ~120 tokens of a
    tiny model's context on it buys nothing. Tokenisation stays token-in, token-out.
    """
    texts = [d.text for d in corpus] + [d.title for d in corpus]
    texts += [d["question"] for d in demos] + ["".join(s["text"] for s in d["segments"]) for d in demos]
    tok = train_bpe(texts, bpe.vocab_size)
    if bpe.atomic_prompt:
        prompts = [system_prompt(style) for style in PROMPT_STYLES]
        tok.backend.add_tokens([AddedToken(p, normalized=False) for p in prompts])
    return tok
