"""The README tour's runs: the demo's recipe (configs/demo_cpu.py) as separate commands on the data
folder that `egrpo gen-data --world synthetic --config configs/demo_cpu.py --out data_out/syn` writes
(the demo's world, demos, BPE tokenizer and BM25 index).

  egrpo sft   --config configs/tiny_cpu.py:sft    # SFT cold start from scratch -> runs/tiny_sft/ckpt
  egrpo train --config configs/tiny_cpu.py        # E-GRPO from that checkpoint -> runs/tiny/ckpt
  egrpo eval  --config configs/tiny_cpu.py --model runs/tiny/ckpt --out runs/eval_tiny

Values come from configs/demo_cpu.py; only paths are set here.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location("_demo_cpu", os.path.join(os.path.dirname(__file__), "demo_cpu.py"))
_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_demo)

DATA = "data_out/syn"
RUNS = {"sft": "runs/tiny_sft", "rl": "runs/tiny"}


def get_config(run: str = "rl"):
    if run not in RUNS:
        raise ValueError(f"configs/tiny_cpu.py:{run}: the run must be one of {sorted(RUNS)}")
    c = _demo.get_sft_config() if run == "sft" else _demo.get_config()
    pipeline = _demo.get_pipeline()
    c.model.tokenizer = f"{DATA}/tokenizer"
    c.model.tiny.vocab_size = 0  # the tokenizer's vocabulary
    c.data.questions, c.data.corpus, c.data.demos = f"{DATA}/train.jsonl", f"{DATA}/corpus.jsonl", f"{DATA}/sft_demos.jsonl"
    c.search.backend, c.search.index_dir = "bm25", f"{DATA}/index"
    # the demos hold the tool text of these settings: the rollouts must see the same
    c.search.topk, c.search.snippet_chars = pipeline.tools.topk, pipeline.tools.snippet_chars
    c.checkpoint.dir = f"{RUNS[run]}/ckpt"
    c.checkpoint.every = max(1, c.train.steps // 5)
    c.checkpoint.init_from = "" if run == "sft" else f"{RUNS['sft']}/ckpt"
    c.logging.dir = f"{RUNS[run]}/logs"
    c.eval.questions = f"{DATA}/test.jsonl"
    c.eval.k, c.eval.batch_size = pipeline.eval_k, pipeline.eval_batch
    c.eval.temperature, c.eval.top_p, c.eval.seed = pipeline.eval_temperature, pipeline.eval_top_p, pipeline.eval_seed
    return c
