"""`egrpo plan-memory`: does `egrpo train` fit the chips? The per-device memory of its train step and of
its rollout engine's calls (decode, write), compiled ahead of time on fake CPU devices over abstract
parameters (rl.memory_plan), against a chip's HBM.

  egrpo plan-memory --config configs/qwen2_5_7b_tpu.py --slices all --layers 2,4   # every TPU slice
  egrpo --cpu-devices 16 plan-memory --config configs/qwen2_5_7b_tpu.py:v5p-32    # one slice, here
  egrpo --cpu-devices 8 plan-memory --config configs/tiny_cpu.py --hbm-gib 1       # any config

With --slices each slice runs in its own process (`egrpo --cpu-devices CHIPS plan-memory --config
FILE:SLICE ...`), since XLA fixes the number of fake devices when jax starts. Slices, their chips and
the chips' HBM come from tpu_common.py beside the config file (configs/tpu_common.py). The model's
shapes come from model.path (config.json, GGUF header or policy.json, no weights read); where that
path is not here, from the published config.json kept in hf/<its folder name>/ beside the config file
(configs/hf/Qwen2.5-7B-Instruct/config.json).

--target tpu compiles with the TPU compiler instead, for the slice's topology (tpu_common.TOPOLOGIES):
libtpu (the `tpu` extra) compiles for TPU chips that are not here. Its buffer assignment, fusion and
layouts are the TPU's own; XLA:CPU's differ (docs/tpu.md says how).

--layers 2,4 compiles the train step for 2- and 4-layer versions of the model and extrapolates each byte
count linearly to its depth (a third depth is checked to lie on the line): a 28-layer train step would
take about ten minutes to compile on two cores, a 2-layer one takes about one. The rollout calls always
compile at full depth (seconds).

Exit status: 0 when every call fits, 3 when one does not (the table's `fits` column says which); 2 for
bad input and 1 for a failed slice process, as for every command.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from egrpo_jax.commands.common import add_config_arguments

EXIT_DOES_NOT_FIT = 3
GIB = 1 << 30
SIZES = ("argument", "output", "alias", "temp", "code", "total")


def configure(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--target", choices=("cpu", "tpu"), default="cpu",
                   help="cpu (default): XLA:CPU over fake CPU devices; tpu: the TPU compiler for the slice's topology "
                        "(libtpu, no TPU needed; slower to compile)")
    p.add_argument("--slices", default=None,
                   help="'all' or comma-separated slices of tpu_common.py beside the config: one process per "
                        "slice with that many fake devices (--config FILE, without :SLICE)")
    p.add_argument("--hbm-gib", type=float, default=None,
                   help="HBM per chip in GiB (default: the chip of the slice that --config FILE:SLICE names)")
    p.add_argument("--layers", default="full",
                   help="'full' (default), or two or three depths, e.g. 2,4: compile the train step at those and "
                        "extrapolate linearly to the model's depth (the rollout calls compile at full depth)")
    p.add_argument("--steps", default="train,decode,write", help="which calls to compile (default: all three)")
    p.add_argument("--json", default=None, help="also write the table's rows as JSON to this file")


def run(args: argparse.Namespace) -> int:
    rows, failed = _run_slices(args) if args.slices else (_run_here(args), 0)
    rows = with_resident_cache(rows)
    print(format_table(rows))
    _write_json(args.json, rows)
    if failed:
        return 1
    return 0 if all(r["fits"] for r in rows) else EXIT_DOES_NOT_FIT


# ---- one mesh, in this process ------------------------------------------------------------------

def _run_here(args: argparse.Namespace) -> list[dict]:
    spec = args.config or ""
    file, _, slice_name = spec.partition(":")
    tpu = _tpu(file)
    is_slice = tpu is not None and slice_name in tpu.SLICES
    if args.hbm_gib is None and not is_slice:
        raise ValueError(f"--hbm-gib: needed, since --config {spec or '(built-in)'} names no TPU slice of a "
                         "tpu_common.py beside it")
    hbm = int((args.hbm_gib if args.hbm_gib is not None else tpu.slice_hbm_gib(slice_name)) * GIB)
    if args.target == "tpu" and not is_slice:
        raise ValueError(f"--target tpu: --config {spec or '(built-in)'} names no TPU slice (its topology)")
    if args.target == "tpu":  # compile-only: jax must not look for a TPU here (libtpu would)
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # jax and the models only now: `egrpo --help` and the errors above stay fast
    import jax

    from egrpo_jax.assembly import build_mesh
    from egrpo_jax.config import load_config
    from egrpo_jax.rl.memory_plan import plan_at_depths, policy_config, topology_mesh

    if args.target == "cpu" and is_slice and jax.device_count() != tpu.slice_chips(slice_name):
        chips = tpu.slice_chips(slice_name)
        raise ValueError(f"--config {spec}: slice {slice_name} has {chips} chips but this process has "
                         f"{jax.device_count()} devices: run `egrpo --cpu-devices {chips} plan-memory ...` or "
                         f"--config {file} --slices {slice_name}")
    cfg = load_config(args.config, args.config_overrides)
    model_cfg = policy_config(cfg, _model_path(cfg, file))
    depths = _depths(args.layers, model_cfg.num_layers)
    mesh = topology_mesh(cfg, tpu.TOPOLOGIES[slice_name]) if args.target == "tpu" else build_mesh(cfg)
    mems = plan_at_depths(cfg, model_cfg, mesh, _steps(args.steps), depths)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    m = cfg.mesh
    common = {"config": os.path.basename(file) if file else "(built-in)", "slice": slice_name or "-",
              "chips": mesh.size, "target": args.target, "mesh": f"{m.data}x{m.fsdp}x{m.tensor}",
              "microbatches": cfg.optim.microbatches, "hbm": hbm, "peak_rss": rss}
    return [dict(common, step=x.step, layers=_layers(x.depths, model_cfg.num_layers), **{k: getattr(x, k) for k in SIZES}, fits=x.fits(hbm), refused=x.refused,
                 compile_s=round(x.compile_s, 1)) for x in mems]


def _model_path(cfg, config_file: str) -> str:
    """model.path, or where it is not here the published config.json kept beside the config file."""
    path = cfg.model.path
    if not path or os.path.exists(path):
        return path
    kept = os.path.join(os.path.dirname(os.path.abspath(config_file)), "hf", os.path.basename(path.rstrip("/")))
    if not os.path.isfile(os.path.join(kept, "config.json")):
        raise ValueError(f"config key model.path = {path!r}: not found, and no {kept}/config.json to take "
                         "the model's shapes from")
    return kept


def _layers(depths: tuple[int, ...], layers: int) -> str:
    return f"{','.join(map(str, depths))}->{layers}" if depths else str(layers)


def _depths(text: str, layers: int) -> tuple[int, ...]:
    if text == "full":
        return ()
    try:
        depths = tuple(sorted({int(x) for x in text.split(",")}))
    except ValueError:
        raise ValueError(f"--layers {text!r}: 'full' or comma-separated layer counts, e.g. 2,4") from None
    if not 2 <= len(depths) <= 3 or depths[0] < 1 or depths[-1] >= layers:
        raise ValueError(f"--layers {text!r}: two or three depths between 1 and the model's {layers - 1}")
    return depths


def _steps(text: str) -> tuple[str, ...]:
    return tuple(s for s in text.split(",") if s)


# ---- every slice, one process each --------------------------------------------------------------

def _run_slices(args: argparse.Namespace) -> tuple[list[dict], int]:
    file = args.config or ""
    tpu = _tpu(file) if file and ":" not in file else None
    if tpu is None:
        raise ValueError(f"--slices needs --config FILE (without :SLICE) with a tpu_common.py beside it, got "
                         f"{args.config!r}")
    names = list(tpu.SLICES) if args.slices == "all" else [s for s in args.slices.split(",") if s]
    bad = [s for s in names if s not in tpu.SLICES]
    if bad:
        raise ValueError(f"--slices: unknown slice {bad[0]!r}; tpu_common.py beside {file} has "
                         f"{', '.join(tpu.SLICES)}")
    rows, failed = [], 0
    for name in names:
        t0 = time.perf_counter()
        got, error = _run_child(args, tpu, file, name)
        if error:
            failed += 1
            print(f"plan-memory: slice {name} failed: {error}", file=sys.stderr)
        else:
            print(f"plan-memory: slice {name} planned in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        rows += got
        _write_json(args.json, rows)  # slice by slice: an all-slices run takes an hour or more
    return rows, failed


def _write_json(path: str | None, rows: list[dict]) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


def _run_child(args: argparse.Namespace, tpu, file: str, name: str) -> tuple[list[dict], str]:
    """Plan one slice in a process of its own; (rows, '') or ([], the child's last error line)."""
    hbm = args.hbm_gib if args.hbm_gib is not None else tpu.slice_hbm_gib(name)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        cmd = [sys.executable, "-m", "egrpo_jax.cli", "--cpu-devices", str(tpu.slice_chips(name)), "plan-memory",
               "--config", f"{file}:{name}", "--target", args.target, "--hbm-gib", str(hbm), "--layers", args.layers,
               "--steps", args.steps, "--json", out, *(f"--config.{o}" for o in args.config_overrides)]
        # the child imports this very package, wherever it lies
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode not in (0, EXIT_DOES_NOT_FIT):
            lines = proc.stderr.strip().splitlines()
            return [], lines[-1] if lines else f"exit status {proc.returncode}"
        with open(out, encoding="utf-8") as f:
            return json.load(f), ""


def _tpu(config_file: str):
    """tpu_common.py beside the config file (imported as the TPU configs import it), or None."""
    folder = os.path.dirname(os.path.abspath(config_file)) if config_file else ""
    if not folder or not os.path.isfile(os.path.join(folder, "tpu_common.py")):
        return None
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("tpu_common")


def with_resident_cache(rows: list[dict]) -> list[dict]:
    """`rows` and, after each train row whose decode row is there, a "train+cache" row: `egrpo train`
    keeps the engine's KV cache (the buffer decode donates and gets back: its alias bytes) on the chips
    while the train step runs, so that is what the step has to fit beside."""
    out = []
    for r in rows:
        out.append(r)
        decode = next((d for d in rows if d["step"] == "decode" and _same_plan(d, r)), None)
        if r["step"] == "train" and decode is not None:
            total = r["total"] + decode["alias"]
            out.append(dict(r, step="train+cache", argument=r["argument"] + decode["alias"], total=total,
                            fits=total <= r["hbm"], compile_s=0.0))
    return out


def _same_plan(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("config", "slice", "target", "mesh"))


# ---- the table ----------------------------------------------------------------------------------

def _verdict(r: dict) -> str:
    if r.get("refused"):
        return "DOES NOT FIT (refused by the compiler: temp alone exceeds HBM)"
    return "FITS" if r["fits"] else "DOES NOT FIT"


def format_table(rows: list[dict]) -> str:
    """Markdown: one row per config x slice x call, sizes in GiB per device."""
    head = ["config", "slice", "chips", "target", "mesh", "micro", "step", "layers", *SIZES, "HBM", "fits", "compile s",
            "peak RSS GiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["config"], r["slice"], r["chips"], r["target"], r["mesh"], r["microbatches"], r["step"], r["layers"],
                 *(f"{r[k] / GIB:.2f}" for k in SIZES), f"{r['hbm'] / GIB:.0f}",
                 _verdict(r), f"{r['compile_s']:.0f}", f"{r['peak_rss'] / GIB:.1f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)
