"""SFT step time: one demo per row vs demos packed into rows (train.pack_demos), same batches.

    PYTHONPATH=. .venv/bin/python -m bench.bench_sft [--config configs/replicate_cpu.py] [--data DIR]

The replicate world's demos are 540 tokens on average (p95 706, cut at 768): one per row pads a
16-demo batch to 16 x 768 positions, packing fits the same demos into about 12 rows. Both arms
take the same 16-demo batches (data.seed) on the same random model, compile excluded (a warm-up
pass over the batches first, which compiles every row count), arms alternated batch by batch.
Prints step seconds (median), padded fraction and the ratio, with the load average at start and
end; writes bench/results/bench_sft.json. `--data` reuses a pipeline data folder (else one is
built under runs/bench-sft-data, a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(os.path.dirname(HERE), "configs", "replicate_cpu.py"))
    ap.add_argument("--data", default="", help="a pipeline data folder (default: build one)")
    ap.add_argument("--batches", type=int, default=6)
    a = ap.parse_args(argv)
    load0 = os.getloadavg()
    from egrpo_jax.assembly import build_mesh, build_policy
    from egrpo_jax.e2e import pipeline as PL
    from egrpo_jax.e2e.settings import load_pipeline_config
    from egrpo_jax.datagen.synth.build import existing_data
    from egrpo_jax.rl.batch import pack_sequences
    from egrpo_jax.rl.learner import Learner
    from egrpo_jax.rl.setup import loss_settings, optim_settings
    from egrpo_jax.rl.sft import DemoStream, load_demos

    pc = load_pipeline_config(a.config)
    data_dir = a.data or os.path.join("runs", "bench-sft-data")
    data = existing_data(data_dir) or PL.build_pipeline_data(pc.pipeline, data_dir)
    cfg, _ = PL.run_configs(pc, data, os.path.join("runs", "bench-sft"), tokenizer_vocab=PL.tokenizer_vocab(data))
    mesh = build_mesh(cfg)
    _, tok = build_policy(cfg, mesh)
    demos, stats = load_demos(cfg.data.demos, tok, prompt_style=cfg.agent.prompt_style,
                              correct_only=cfg.data.correct_demos_only, max_len=cfg.train.max_seq_len)
    stream = DemoStream(len(demos), cfg.data.batch_size, cfg.data.seed)
    batches = [next(stream) for _ in range(a.batches)]
    arms = {}
    for pack in (False, True):
        model, _ = build_policy(cfg, mesh)  # same seed: the same random model for both arms
        arms[pack] = {"learner": Learner(model, mesh, optim_settings(cfg), loss_settings(cfg, "sft")),
                      "times": [], "pad": []}

    def run(pack: bool, idx, timed: bool) -> None:
        arm = arms[pack]
        b = pack_sequences([demos[i][0] for i in idx], [demos[i][1] for i in idx], max_len=cfg.train.max_seq_len,
                           row_multiple=arm["learner"].row_multiple(), pack=pack)
        t0 = time.perf_counter()
        arm["learner"].train_step(b)
        if timed:
            arm["times"].append(time.perf_counter() - t0)
            arm["pad"].append(1.0 - sum(len(demos[i][0]) for i in idx) / b.tokens.size)
            arm["shape"] = list(b.tokens.shape)

    for idx in batches:  # warm-up: compiles every shape the timed pass meets
        for pack in (False, True):
            run(pack, idx, False)
    for idx in batches:
        for pack in (False, True):
            run(pack, idx, True)
    load1 = os.getloadavg()
    res = {"config": os.path.basename(a.config), "demos": stats, "batch": cfg.data.batch_size,
           "max_seq_len": cfg.train.max_seq_len, "batches": a.batches, "load_start": load0, "load_end": load1}
    print(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f}")
    print(f"{'arm':<16}{'step s (median)':>16}{'padded':>9}{'last shape':>14}")
    for pack, name in ((False, "one per row"), (True, "packed")):
        arm = arms[pack]
        med = statistics.median(arm["times"])
        res[name.replace(" ", "_")] = {"step_s": med, "step_s_all": arm["times"],
                                       "pad_fraction": statistics.mean(arm["pad"]), "last_shape": arm["shape"]}
        print(f"{name:<16}{med:>16.3f}{statistics.mean(arm['pad']):>9.1%}{str(arm['shape']):>14}")
    res["ratio"] = res["one_per_row"]["step_s"] / res["packed"]["step_s"]
    print(f"ratio (one per row / packed step time): {res['ratio']:.2f}x")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "bench_sft.json"), "w") as f:
        json.dump(res, f, indent=2)
    print("wrote bench/results/bench_sft.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
