"""RL step time, on-policy vs one-step off-policy (rl.off_policy_steps 0 vs 1), with a search
backend that answers every HTTP request 50 ms late.

    PYTHONPATH=. .venv/bin/python -m bench.bench_offpolicy [--run runs/demo] [--steps 6]

Both arms start from the RL policy of a `make demo` run folder and train its RL config (16
questions x G = 8 per step) against its BM25 index served over HTTP by our Search-R1 server,
with a 50 ms sleep per request (a remote retriever). The step time is the median of steps
2..N (step 1 has nothing to overlap and compiles). Off-policy, step t+1's rollouts (decode,
tool latency, tokenisation, parsing) run while step t trains. Sets the `offpolicy` section of
bench/results/bench_rollout.json (bench/rollout_results.py) with the load average at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from bench.rollout_results import set_section

HERE = os.path.dirname(os.path.abspath(__file__))
LATENCY_S = 0.05


class _Late:
    """A search backend whose every call takes LATENCY_S longer."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def search(self, queries, topk):
        time.sleep(LATENCY_S)
        return self.backend.search(queries, topk)

    def fetch(self, ids):
        time.sleep(LATENCY_S)
        return self.backend.fetch(ids)

    def __len__(self):
        return len(self.backend)


def _arm(run: str, url: str, off: int, steps: int) -> list[dict]:
    import copy

    from egrpo_jax.config import validate
    from egrpo_jax.e2e.settings import load_pipeline_config
    from egrpo_jax.metrics_log import read_metrics
    from egrpo_jax.rl.loop import run_train

    pc = load_pipeline_config(os.path.join(os.path.dirname(HERE), "configs", "demo_cpu.py"))
    cfg = copy.deepcopy(pc.rl)
    logs = tempfile.mkdtemp(prefix=f"bench_offpolicy{off}_")
    t = pc.pipeline.tools
    cfg.model.path, cfg.model.tokenizer = os.path.join(run, "rl", "ckpt"), ""
    cfg.data.questions, cfg.data.corpus = os.path.join(run, "data", "train.jsonl"), ""
    cfg.search.backend, cfg.search.url, cfg.search.index_dir = "http", url, ""
    cfg.search.topk, cfg.search.snippet_chars, cfg.search.page_tokens = t.topk, t.snippet_chars, t.page_tokens
    cfg.train.steps, cfg.optim.warmup_steps = steps, 0
    cfg.checkpoint.dir, cfg.checkpoint.init_from = "", ""
    cfg.logging.dir, cfg.logging.progress = logs, False
    cfg.rl.off_policy_steps = off
    validate(cfg)
    run_train(cfg)
    return read_metrics(logs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default="runs/demo", help="a `make demo` run folder (rl/ckpt, data/)")
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.run, "rl", "ckpt", "policy.json")):
        raise SystemExit(f"{args.run}/rl/ckpt: no trained policy (policy.json); run `make demo` or pass --run")
    from egrpo_jax.tools.registry import open_backend
    from egrpo_jax.tools.server import make_server, serve_in_thread

    load_start = os.getloadavg()
    server = make_server(_Late(open_backend(os.path.join(args.run, "data", "index"))))
    serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    out = {"latency_s_per_request": LATENCY_S, "steps": args.steps, "load_avg_start": load_start, "arms": {}}
    try:
        for off in (0, 1):
            rows = _arm(args.run, url, off, args.steps)
            later = rows[1:]
            out["arms"][str(off)] = {
                "step_s": round(statistics.median(r["time/step_s"] for r in later), 3),
                "rollout_s": round(statistics.median(r["time/rollout_s"] for r in later), 3),
                "train_s": round(statistics.median(r["time/train_s"] for r in later), 3),
                "rollout_wait_s": round(statistics.median(r.get("time/rollout_wait_s", 0.0) for r in later), 3),
                "tool_wait_s": round(statistics.median(r["agent/time/tools_wait_s"] for r in later), 3),
                "reward": [round(r["reward/mean"], 3) for r in rows],
            }
    finally:
        server.shutdown()
    out["ratio"] = round(out["arms"]["0"]["step_s"] / out["arms"]["1"]["step_s"], 3)
    out["load_avg_end"] = os.getloadavg()
    print(f"load average {tuple(round(x, 2) for x in load_start)} -> {tuple(round(x, 2) for x in out['load_avg_end'])}")
    print("| rl.off_policy_steps | step s | rollout s | train s | waiting for rollouts s |")
    print("|---|---|---|---|---|")
    for k, a in out["arms"].items():
        print(f"| {k} | {a['step_s']} | {a['rollout_s']} | {a['train_s']} | {a['rollout_wait_s']} |")
    print(f"ratio (on-policy / off-policy step time): {out['ratio']}x")
    set_section("offpolicy", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
