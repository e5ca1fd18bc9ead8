"""Full fine-tuning vs LoRA on one pretrained model: SFT step time, peak memory, trainable parameters
and checkpoint size.

    PYTHONPATH=. .venv/bin/python -m bench.bench_lora --model PATH [--rows 2 --seq 1024] [--rank 16]

`--model` is an HF folder or a .gguf file. Each mode runs in its own subprocess, so the peak RSS
(resource.getrusage maxrss: model load, compile and steps included) is that mode's alone:
- full: every weight trains (model.param_dtype float32);
- lora: rank `--rank` adapters on all 7 projections (q, k, v, o, gate, up, down), alpha 2 x rank,
  the base frozen in `--base-dtype`.
Both take the same random [rows, seq] batch (tokens after the first quarter of each row trained,
SFT loss, AdamW); the step time is the median of `--steps` steps after a first (compiling) one.
The defaults are configs/real_cpu.py's train step (2 x 1024 tokens, log-probs in 256-token chunks:
~12.5 GB RSS for full fine-tuning of SmolLM2-135M).
The checkpoint size is the orbax step folder on disk (train state: trained weights + Adam moments).
Prints a table and writes bench/results/<--out> (default bench_lora.json) with the load average
at start and end. On a shared CPU the times move with the load; compare the two modes of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("full", "lora")


def _batch(rows: int, seq: int, vocab: int):
    import numpy as np

    from egrpo_jax.rl.batch import pack_sequences

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, vocab, (rows, seq)).tolist()
    return pack_sequences(tokens, [[0] * (seq // 4) + [1] * (seq - seq // 4)] * rows)


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def worker(a: argparse.Namespace) -> dict:
    """One mode in this process: load, compile, time, checkpoint; returns the measurements."""
    from egrpo_jax import runtime

    runtime.apply_env()
    import jax

    from egrpo_jax.checkpoint import Checkpointer
    from egrpo_jax.config import LORA_TARGETS
    from egrpo_jax.mesh import make_mesh
    from egrpo_jax.policy import load_policy
    from egrpo_jax.rl.learner import Learner, LossSettings, OptimSettings

    lora = None
    if a.worker == "lora":
        lora = {"lora_rank": a.rank, "lora_alpha": 2.0 * a.rank, "lora_targets": LORA_TARGETS,
                "lora_base_dtype": a.base_dtype}
    mesh = make_mesh(1, -1, 1)
    t0 = time.perf_counter()
    model = load_policy(a.model, mesh=mesh, dtype=a.dtype, param_dtype="float32", tokenizer="byte", lora=lora).model
    load_s = time.perf_counter() - t0
    learner = Learner(model, mesh, OptimSettings(lr=1e-5), LossSettings(kind="sft", logprob_chunk=a.logprob_chunk))
    batch = _batch(a.rows, a.seq, model.cfg.vocab_size)
    t0 = time.perf_counter()
    learner.train_step(batch)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        learner.train_step(batch)  # returns host metrics: includes the device sync
        times.append(time.perf_counter() - t0)
    trainable = sum(x.size for x in jax.tree.leaves(learner.state.params))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Checkpointer(tmp)
        ckpt.save(1, learner.state)
        ckpt.close()
        ckpt_bytes = _dir_bytes(os.path.join(tmp, "1"))
    return {"mode": a.worker, "step_s": statistics.median(times), "step_s_all": times, "compile_s": compile_s,
            "load_s": load_s, "trainable_params": int(trainable), "base_params": model.cfg.num_params,
            "checkpoint_bytes": ckpt_bytes, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "device": jax.devices()[0].device_kind, "n_devices": jax.device_count()}


def run_mode(mode: str, argv: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "bench.bench_lora", *argv, "--worker", mode], cwd=os.path.dirname(HERE),
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"bench_lora {mode} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF folder or .gguf file")
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5, help="timed steps after the compiling one")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--dtype", default="float32", help="compute dtype")
    ap.add_argument("--base-dtype", default="float32", help="LoRA: the frozen base weights' dtype")
    ap.add_argument("--logprob-chunk", type=int, default=256, help="optim.logprob_chunk (0: all positions at once)")
    ap.add_argument("--out", default="bench_lora.json", help="file name under bench/results/")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a)))
        return 0
    if not os.path.exists(a.model):
        raise SystemExit(f"--model {a.model}: file not found")
    args = [f"--model={a.model}", f"--rows={a.rows}", f"--seq={a.seq}", f"--steps={a.steps}", f"--rank={a.rank}",
            f"--dtype={a.dtype}", f"--base-dtype={a.base_dtype}", f"--logprob-chunk={a.logprob_chunk}"]
    load0 = os.getloadavg()
    res = {m: run_mode(m, args) for m in MODES}
    load1 = os.getloadavg()
    print(f"{a.model}: {a.rows} x {a.seq} tokens per step, LoRA rank {a.rank} on q,k,v,o,gate,up,down "
          f"(base {a.base_dtype}), compute {a.dtype}, {res['full']['device']}")
    print(f"{'mode':<6}{'step s':>10}{'compile s':>11}{'peak RSS MiB':>14}{'trainable':>14}{'checkpoint MiB':>16}")
    for m in MODES:
        r = res[m]
        print(f"{m:<6}{r['step_s']:>10.3f}{r['compile_s']:>11.1f}{r['peak_rss_bytes'] / 2**20:>14.0f}"
              f"{r['trainable_params']:>14,}{r['checkpoint_bytes'] / 2**20:>16.2f}")
    print(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f}")
    out = {"model": a.model, "rows": a.rows, "seq": a.seq, "rank": a.rank, "dtype": a.dtype, "base_dtype": a.base_dtype,
           "logprob_chunk": a.logprob_chunk, "load_start": load0, "load_end": load1,
           "measured": time.strftime("%Y-%m-%d %H:%M"), **res}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", a.out)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
