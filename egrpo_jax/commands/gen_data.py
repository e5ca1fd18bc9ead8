"""`egrpo gen-data`: write questions (train/dev/test), the corpus and SFT demos, then a summary.

  egrpo gen-data --world synthetic --out data_out/syn [--config configs/demo_cpu.py] [--seed N] [--questions N] ...
  egrpo gen-data --world real --out data_out/real [--config configs/real_cpu.py] [--questions N] [--wiki-docs N]
  egrpo gen-data --world fanoutqa --out data_out/fanoutqa      (questions only: test.jsonl)
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import statistics
import time

from egrpo_jax.data.io import load_questions, write_questions
from egrpo_jax.data.schema import QARecord


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world", choices=("synthetic", "real", "fanoutqa"), default="synthetic")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", default=None, help="a pipeline config (e.g. configs/demo_cpu.py, or for --world real "
                   "configs/real_cpu.py) whose get_pipeline() names the world, demos, tools (and BPE); the flags below "
                   "override it")
    p.add_argument("--seed", type=int, default=None, help="default 0 (or the --config world's)")
    p.add_argument("--questions", type=int, default=None, help="number of questions (default: the world's)")
    p.add_argument("--min-hops", type=int, default=None)
    p.add_argument("--max-hops", type=int, default=None)
    g = p.add_argument_group("synthetic world")
    g.add_argument("--people", type=int, default=None)
    g.add_argument("--orgs", type=int, default=None)
    g.add_argument("--cities", type=int, default=None)
    g.add_argument("--countries", type=int, default=None)
    g.add_argument("--works", type=int, default=None)
    g.add_argument("--fuzz-rate", type=float, default=None)
    g.add_argument("--distractor-rate", type=float, default=None)
    g.add_argument("--recovered-rate", type=float, default=None,
                   help="fraction of demos with a recovered wrong turn (default 0.15)")
    g.add_argument("--wrong-rate", type=float, default=None, help="fraction of demos with a wrong final answer "
                   "(default 0.1)")
    g.add_argument("--topk", type=int, default=None, help="search hits per query in demos (must match RL; default 3, "
                   "real world 1)")
    g.add_argument("--snippet-chars", type=int, default=None, help="snippet length in demos (must match RL; "
                   "default 200, real world 400)")
    g.add_argument("--vocab-size", type=int, default=None, help="vocabulary of the BPE written to OUT/tokenizer "
                   "(for policies trained from scratch; default 1024)")
    r = p.add_argument_group("real world")
    r.add_argument("--wiki-docs", type=int, default=None, help="Wikipedia summaries in the corpus (default all)")
    r.add_argument("--min-city-population", type=int, default=None)


def _overrides(args, mapping: dict[str, str]) -> dict:
    return {field: getattr(args, arg) for arg, field in mapping.items() if getattr(args, arg) is not None}


def summarize(splits: dict[str, list[QARecord]], extra: dict[str, object], seconds: float) -> str:
    qs = [q for s in splits.values() for q in s]
    hops = collections.Counter(q.metadata.get("hops") for q in qs)
    ents = [len(q.entities) for q in qs]
    lines = [
        "questions: " + ", ".join(f"{k}={len(v)}" for k, v in splits.items()) + f" (total {len(qs)})",
        "hops: " + ", ".join(f"{h}: {n}" for h, n in sorted(hops.items(), key=lambda x: (not isinstance(x[0], int), x[0] if isinstance(x[0], int) else 0))),
        f"entities per question: mean {statistics.mean(ents):.2f}, min {min(ents)}, max {max(ents)}",
        *[f"{k}: {v}" for k, v in extra.items()],
        f"time: {seconds:.2f} s",
    ]
    return "\n".join(lines)


def _demo_flags(args, demos, tools):
    """The demo and tool flags over the config's DemoConfig / ToolConfig. Replace, not rebuild: every
    field of the config's (early_stop_rate too) is kept."""
    demos = dataclasses.replace(demos, seed=demos.seed if args.seed is None else args.seed,
                                **_overrides(args, {"recovered_rate": "recovered_rate", "wrong_rate": "wrong_rate"}))
    tools = dataclasses.replace(tools, **_overrides(args, {"topk": "topk", "snippet_chars": "snippet_chars"}))
    return demos, tools


def _synthetic(args):
    """(splits, summary lines, paths) of the synthetic folder: datagen.synth.build, as the demo builds it."""
    from egrpo_jax.datagen.synth.build import DEMO_TOOLS, BpeSettings, build_synthetic, write_data
    from egrpo_jax.datagen.synth.oracle import DemoConfig
    from egrpo_jax.datagen.synth.world import WorldConfig

    if args.config:
        from egrpo_jax.e2e.settings import load_pipeline_config

        s = load_pipeline_config(args.config).pipeline
        if s.real is not None:
            raise ValueError(f"--config {args.config}: its get_pipeline() is the real-world set: use --world real")
        world, demos, tools, bpe = s.world, s.demos, s.tools, BpeSettings(s.vocab_size, s.atomic_prompt)
    else:
        world, demos, tools, bpe = WorldConfig(), DemoConfig(0.15, 0.1), DEMO_TOOLS, BpeSettings()
    seed = world.seed if args.seed is None else args.seed
    world = dataclasses.replace(world, seed=seed, **_overrides(args, {
        "questions": "n_questions", "min_hops": "min_hops", "max_hops": "max_hops", "people": "n_people",
        "orgs": "n_orgs", "cities": "n_cities", "countries": "n_countries", "works": "n_works",
        "fuzz_rate": "fuzz_rate", "distractor_rate": "distractor_rate"}))
    world.validate()
    demos, tools = _demo_flags(args, demos, tools)
    bpe = dataclasses.replace(bpe, **_overrides(args, {"vocab_size": "vocab_size"}))
    data = build_synthetic(world, demos, tools)
    written = write_data(data, args.out, bpe=bpe)
    kinds = collections.Counter(d["kind"] for d in data.demos)
    extra = {
        "entities": f"{len(data.world.nodes)} (+{len(data.world.distractors)} distractors)",
        "corpus docs": len(data.corpus),
        "dropped (not answerable with these tools)": data.dropped,
        "sft demos": f"{len(data.demos)} " + str(dict(kinds)),
        "demo tools": f"topk={tools.topk} snippet_chars={tools.snippet_chars} (set search.* of the RL run to these)",
        "tokenizer": f"BPE, {bpe.vocab_size} target vocabulary",
    }
    paths = {k: getattr(written, k) for k in ("train", "dev", "test", "corpus", "demos", "index", "tokenizer")}
    return data.splits, extra, paths


def _real(args):
    """(splits, summary lines, paths) of the real-world folder: datagen.real.folder, as the demo builds it."""
    from egrpo_jax.datagen.real.build import RealConfig, build_real
    from egrpo_jax.datagen.real.folder import REAL_TOOLS, build_real_data
    from egrpo_jax.datagen.synth.oracle import DemoConfig

    real, demos, tools = RealConfig(), DemoConfig(recovered_rate=0.0, wrong_rate=0.0), REAL_TOOLS
    if args.config:
        from egrpo_jax.e2e.settings import load_pipeline_config

        s = load_pipeline_config(args.config).pipeline
        if s.real is None:
            raise ValueError(f"--config {args.config}: its get_pipeline() has no real-world set (pipeline.real)")
        real, demos, tools = s.real, s.demos, s.tools
    real = dataclasses.replace(real, seed=real.seed if args.seed is None else args.seed, **_overrides(args, {
        "questions": "n_questions", "min_hops": "min_hops", "max_hops": "max_hops",
        "wiki_docs": "wiki_docs", "min_city_population": "min_city_population"}))
    demos, tools = _demo_flags(args, demos, tools)
    data = build_real(real)
    written = build_real_data(args.out, real, demos, tools, data=data)
    splits = {k: load_questions(getattr(written, k)) for k in ("train", "dev", "test")}
    st = written.stats
    extra = {
        "corpus docs": len(data.corpus), "dropped (hop not stated)": data.dropped,
        "dropped (not answerable with these tools)": st["questions/dropped_unanswerable"],
        "sft demos": f"{st['demos']} " + str({k.split('/')[1]: v for k, v in st.items()
                                               if k.startswith("demos/") and k != "demos/correct"}),
        "demo tools": f"topk={tools.topk} snippet_chars={tools.snippet_chars} (set search.* of the RL run to these)",
    }
    paths = {k: getattr(written, k) for k in ("train", "dev", "test", "corpus", "demos", "index")}
    return splits, extra, paths


def run(args) -> int:
    t0 = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    if args.world == "fanoutqa" and args.config:
        raise ValueError("--config: only for --world synthetic or real (got --world fanoutqa)")
    if args.world != "synthetic" and args.vocab_size:
        raise ValueError(f"--vocab-size: only for --world synthetic (got --world {args.world})")
    if args.world == "synthetic":
        splits, extra, paths = _synthetic(args)
    elif args.world == "real":
        splits, extra, paths = _real(args)
    else:
        from egrpo_jax.datagen.real.fanoutqa import load_fanoutqa

        splits = {"test": load_fanoutqa()}
        paths = {"test": os.path.join(args.out, "test.jsonl")}
        write_questions(paths["test"], splits["test"])
        extra = {"corpus": "none (FanOutQA ships no page text; bring a search backend)"}
    print(summarize(splits, extra, time.perf_counter() - t0))
    for k, p in paths.items():
        print(f"wrote {k}: {p}")
    return 0
