"""Train-step throughput of the E-GRPO learner, against Tunix's GRPO learner in the same run.

    PYTHONPATH=. .venv/bin/python -m bench.bench_train            # CPU: ours vs Tunix (ratio)
    PYTHONPATH=. python -m bench.bench_train --gpu                 # GPU: MFU, SmolLM2-135M-shaped model

CPU mode times one GRPO policy update (log-probs of the rollouts, clipped surrogate, AdamW) on a
tiny Qwen2 config for both stacks: ours (egrpo_jax.rl.learner.Learner.train_step) and Tunix's
(the actor trainer of tunix.rl.grpo.GrpoLearner: tunix's grpo_loss_fn under its PeftTrainer's
jitted train step), same model shape, batch (questions x G), sequence lengths and optimizer.
Tunix runs in its own venv (bench/.venv-tunix, google-tunix 0.1.7; created when missing) as a
subprocess, on the same machine, right after ours. Tokens/s counts every position of the padded
[rows, prompt + completion] batch for both. Sets the `train` section of bench/results/bench_rollout.json
(bench/rollout_results.py); with --skip-tunix writes bench_train_ours.json, with --gpu bench_train_gpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.rollout_results import set_section

HERE = os.path.dirname(os.path.abspath(__file__))
TUNIX_VENV = os.path.join(HERE, ".venv-tunix")
TUNIX_VERSION = "0.1.7"

# The tiny Qwen2 shape both stacks build (Tunix: tunix.models.qwen2.model.ModelConfig).
TINY = dict(vocab_size=2048, hidden_size=128, intermediate_size=384, num_layers=4, num_heads=4, num_kv_heads=2,
            head_dim=32, rope_theta=10000.0, rms_norm_eps=1e-6)
# SmolLM2-135M (Llama family) for the GPU MFU run.
SMOLLM2 = dict(family="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30,
               num_heads=9, num_kv_heads=3, head_dim=64, tie_embeddings=True, rope_theta=100000.0, rms_norm_eps=1e-5)
# bf16 dense peak FLOP/s per chip.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "TPU v4": 275e12, "TPU v5e": 197e12,
              "TPU v5p": 459e12, "TPU v6e": 918e12}


def _batch(rows: int, prompt: int, completion: int, vocab: int, seed: int = 0):
    import numpy as np

    from egrpo_jax.rl.batch import TrainBatch

    rng = np.random.default_rng(seed)
    t = prompt + completion
    tokens = rng.integers(1, vocab, (rows, t)).astype(np.int32)
    mask = np.zeros((rows, t), np.float32)
    mask[:, prompt:] = 1.0
    old = np.where(mask > 0, rng.normal(-np.log(vocab), 0.1, (rows, t)), 0).astype(np.float32)
    adv = rng.normal(0, 1, rows).astype(np.float32)
    return TrainBatch(tokens, mask, old, adv, rows)


def bench_ours(model_kw: dict, rows: int, prompt: int, completion: int, steps: int, *, dtype: str = "float32",
               chunk: int = 0, microbatches: int = 1, remat: bool = False, host_init: bool = False) -> dict:
    import jax
    from flax import nnx

    from egrpo_jax.mesh import make_mesh
    from egrpo_jax.models.config import ModelConfig
    from egrpo_jax.models.sharding import create_model
    from egrpo_jax.rl.learner import Learner, LossSettings, OptimSettings

    kw = dict(model_kw)
    kw.setdefault("family", "qwen2")
    if kw["family"] == "qwen2":
        kw.setdefault("qkv_bias", True)
    cfg = ModelConfig(**kw, dtype=dtype, param_dtype="float32", remat=remat)
    mesh = make_mesh(1, -1, 1)
    t0 = time.perf_counter()
    if host_init:
        # Random weights drawn on the host: on an H100 with jax 0.11 the jitted init of a 30-layer
        # model (models.sharding.create_model) did not finish compiling within 8 minutes.
        import numpy as np

        from egrpo_jax.models.sharding import model_from_arrays

        rng = np.random.default_rng(0)

        def init(path, shape):
            name = str(path[-2] if path[-1] == "value" else path[-1])
            if name == "scale":
                return np.ones(shape, np.float32)
            if name.startswith("b"):
                return np.zeros(shape, np.float32)
            return (0.02 * rng.standard_normal(shape, np.float32))

        model = model_from_arrays(cfg, init, mesh=mesh)
    else:
        model = create_model(cfg, mesh=mesh, seed=0)
    jax.block_until_ready(jax.tree.leaves(nnx.state(model)))
    print(f"  model created in {time.perf_counter() - t0:.1f} s", flush=True)
    learner = Learner(model, mesh, OptimSettings(lr=1e-6, clip_norm=1.0),
                      LossSettings(kind="rl", eps_low=0.2, eps_high=0.2, logprob_chunk=chunk),
                      microbatches=microbatches)
    batch = _batch(rows, prompt, completion, cfg.vocab_size)
    t0 = time.perf_counter()
    learner.train_step(batch)  # compile + first step
    compile_s = time.perf_counter() - t0
    print(f"  first step (compile) {compile_s:.1f} s", flush=True)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        m = learner.train_step(batch)  # returns host metrics: includes device sync
        times.append(time.perf_counter() - t0)
    step_s = min(times)  # least disturbed by other load on a shared machine
    tokens = rows * (prompt + completion)
    return {"step_s": step_s, "tokens_per_s": tokens / step_s, "compile_s": compile_s, "loss": m["loss"],
            "params": cfg.num_params, "device": jax.devices()[0].device_kind, "n_devices": jax.device_count()}


def ensure_tunix_venv() -> str:
    py = os.path.join(TUNIX_VENV, "bin", "python")
    ok = os.path.exists(py) and subprocess.run([py, "-c", "import tunix"], capture_output=True).returncode == 0
    if not ok:
        print(f"creating {TUNIX_VENV} with google-tunix=={TUNIX_VERSION} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", TUNIX_VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", f"google-tunix=={TUNIX_VERSION}"], check=True)
    return py


def bench_tunix(rows: int, prompt: int, completion: int, steps: int, group: int) -> dict:
    py = ensure_tunix_venv()
    args = json.dumps(dict(model=TINY, rows=rows, prompt=prompt, completion=completion, steps=steps, group=group))
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("PYTHONPATH", None)  # keep our package (and its jax) out of Tunix's interpreter
    out = subprocess.run([py, os.path.join(HERE, "tunix_train_step.py"), args], capture_output=True, text=True,
                         env=env, cwd=HERE)
    if out.returncode != 0:
        raise RuntimeError(f"tunix benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def flops_per_token(cfg: dict, seq: int) -> float:
    """Training FLOPs per token: 6 * params (matmuls, forward + backward) + 12 * L * q_dim * seq (attention)."""
    from egrpo_jax.models.config import ModelConfig

    n = ModelConfig(**cfg).num_params
    return 6.0 * n + 12.0 * cfg["num_layers"] * cfg["num_heads"] * cfg["head_dim"] * seq


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", action="store_true", help="GPU run: MFU of a SmolLM2-135M-shaped random model")
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--completion", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--skip-tunix", action="store_true")
    a = ap.parse_args()
    load0 = os.getloadavg()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    rows = a.questions * a.group
    if a.gpu:
        import jax

        kind = jax.devices()[0].device_kind
        peak = next((v for k, v in PEAK_FLOPS.items() if k in kind), None)
        seq = a.prompt + a.completion if (a.prompt, a.completion) != (128, 128) else 1024
        rows = rows if rows != 16 else 32
        r = bench_ours(SMOLLM2, rows, seq // 4, seq - seq // 4, a.steps, dtype="bfloat16", chunk=256, host_init=True)
        fpt = flops_per_token(SMOLLM2, seq)
        achieved = fpt * r["tokens_per_s"] / jax.device_count()
        r.update(flops_per_token=fpt, achieved_tflops=achieved / 1e12, peak_tflops=(peak or 0) / 1e12,
                 mfu=(achieved / peak) if peak else None, rows=rows, seq=seq)
        print(f"{'device':<12}{'rows x seq':>14}{'step s':>10}{'tokens/s':>12}{'TFLOP/s':>10}{'MFU':>8}")
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        print(f"{kind:<12}{f'{rows} x {seq}':>14}{r['step_s']:>10.4f}{r['tokens_per_s']:>12.0f}"
              f"{r['achieved_tflops']:>10.1f}{mfu:>8}")
        path = os.path.join(HERE, "results", "bench_train_gpu.json")
    else:
        ours = bench_ours(TINY, rows, a.prompt, a.completion, a.steps)
        tunix = None if a.skip_tunix else bench_tunix(rows, a.prompt, a.completion, a.steps, a.group)
        r = {"config": dict(TINY, rows=rows, questions=a.questions, group=a.group, prompt=a.prompt,
                            completion=a.completion), "ours": ours, "tunix": tunix}
        print(f"{'stack':<10}{'step s':>10}{'tokens/s':>12}{'compile s':>11}")
        for name, x in (("egrpo-jax", ours), ("tunix", tunix)):
            if x:
                print(f"{name:<10}{x['step_s']:>10.4f}{x['tokens_per_s']:>12.0f}{x['compile_s']:>11.1f}")
        if tunix:
            r["ratio"] = ours["tokens_per_s"] / tunix["tokens_per_s"]
            print(f"ratio (ours / tunix tokens/s): {r['ratio']:.2f}x")
        path = None if tunix else os.path.join(HERE, "results", "bench_train_ours.json")
    r["load_avg_start"], r["load_avg_end"] = load0, os.getloadavg()
    print(f"load average at start {load0[0]:.2f}, at end {r['load_avg_end'][0]:.2f}")
    if path is None:
        set_section("train", r)
        return 0
    with open(path, "w") as f:
        json.dump(r, f, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
