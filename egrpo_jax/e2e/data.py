"""Step 1 of the pipeline: synthetic world -> question splits, corpus, SFT demos, tokenizer, index.

Demos are made question by question so that a question whose facts the oracle cannot see with
the chosen (small) tool settings is dropped from every split instead of failing the build; the
count is reported. The same ToolConfig is used for the demos and later for the rollouts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time

from egrpo_jax.data.io import write_corpus, write_jsonl, write_questions
from egrpo_jax.datagen.synth.corpus import build_corpus
from egrpo_jax.datagen.synth.oracle import PERFECT, Oracle, Unanswerable
from egrpo_jax.datagen.synth.questions import make_questions, split_questions
from egrpo_jax.datagen.synth.world import build_world
from egrpo_jax.e2e.settings import PipelineSettings

STATS_FILE = "data.json"  # written last: its presence means the folder is complete


@dataclasses.dataclass
class DataPaths:
    root: str
    train: str
    dev: str
    test: str
    corpus: str
    demos: str
    index: str
    tokenizer: str  # "" when the policy brings its own tokenizer
    stats: dict


def build_data(settings: PipelineSettings, out_dir: str, *, tokenizer: bool = True) -> DataPaths:
    """Write <out>/{train,dev,test,corpus,sft_demos}.jsonl, <out>/index and (optionally) <out>/tokenizer."""
    from egrpo_jax.tools.bm25 import Bm25Index

    t0 = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    world = build_world(settings.world)
    corpus, doc_of = build_corpus(world)
    splits = split_questions(world, make_questions(world))
    index = Bm25Index.build(corpus)
    oracle = Oracle(world, doc_of, index, settings.tools)
    rng = random.Random(f"demos-{settings.demos.seed}")
    demos, dropped = [], 0
    keep: dict[str, list] = {name: [] for name in splits}
    try:
        for name, records in splits.items():
            for q in records:
                kind = settings.demos.kind(rng.random())
                try:
                    # the perfect path must exist for every kept question, whatever the demo's kind
                    oracle.demo(q, PERFECT)
                    d = oracle.demo(q, kind, random.Random(f"demo-{settings.demos.seed}-{q.id}"))
                except Unanswerable:
                    dropped += 1
                    continue
                keep[name].append(q)
                if name == "train":
                    demos.append({"id": f"demo-{len(demos):06d}", **d})
    finally:
        oracle.close()
    if not keep["train"] or not keep["test"]:
        raise ValueError(f"world {settings.world}: no answerable train/test questions with tools {settings.tools}")
    paths = {name: os.path.join(out_dir, f"{name}.jsonl") for name in keep}
    for name, recs in keep.items():
        write_questions(paths[name], recs)
    corpus_path = os.path.join(out_dir, "corpus.jsonl")
    write_corpus(corpus_path, corpus)
    demos_path = os.path.join(out_dir, "sft_demos.jsonl")
    write_jsonl(demos_path, demos)
    index_dir = os.path.join(out_dir, "index")
    index.save(index_dir)
    tok_dir = ""
    if tokenizer:
        tok_dir = os.path.join(out_dir, "tokenizer")
        train_tokenizer(corpus, demos, settings).save(tok_dir)
    stats = {
        "entities": len(world.nodes), "distractors": len(world.distractors), "documents": len(corpus),
        **{f"questions/{k}": len(v) for k, v in keep.items()}, "questions/dropped_unanswerable": dropped,
        "demos": len(demos), "demos/correct": sum(bool(d["correct"]) for d in demos),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    out = DataPaths(out_dir, paths["train"], paths["dev"], paths["test"], corpus_path, demos_path, index_dir,
                    tok_dir, stats)
    with open(os.path.join(out_dir, STATS_FILE), "w", encoding="utf-8") as f:
        json.dump(dataclasses.asdict(out), f, indent=2)
    return out


def existing_data(out_dir: str) -> DataPaths | None:
    """The DataPaths of a folder build_data finished earlier (None if there is none)."""
    path = os.path.join(out_dir, STATS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return DataPaths(**json.load(f))


def train_tokenizer(corpus, demos, settings: PipelineSettings):
    """A byte-level BPE (datagen.bpe) on the corpus, the questions and the demos.

    With `atomic_prompt` the fixed system prompt (both prompt styles) becomes one added token: it
    is host text that every rollout starts with and carries no loss, so spending ~120 tokens of a
    tiny model's context on it buys nothing. Tokenisation stays token-in, token-out.
    """
    from tokenizers import AddedToken

    from egrpo_jax.agent.template import PROMPT_STYLES, system_prompt
    from egrpo_jax.datagen.bpe import train_bpe

    texts = [d.text for d in corpus] + [d.title for d in corpus]
    texts += [d["question"] for d in demos] + ["".join(s["text"] for s in d["segments"]) for d in demos]
    tok = train_bpe(texts, settings.vocab_size)
    if settings.atomic_prompt:
        prompts = [system_prompt(style) for style in PROMPT_STYLES]
        tok.backend.add_tokens([AddedToken(p, normalized=False) for p in prompts])
    return tok
