"""Same config and seed, same machine: identical SFT losses, RL metrics and eval tables.

Timing-derived values (seconds, tokens/s, latencies) are the only keys allowed to differ."""

import json
import math

from test_e2e_pipeline import micro_config


def _timing(key: str) -> bool:
    return any(w in key for w in ("time", "_s", "per_s", "latency", "seconds"))


def _rows(path):
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        out.append({k: v for k, v in row.items() if not _timing(k)})
    return out


def _same(a, b, where):
    assert a.keys() == b.keys(), where
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        assert x == y, f"{where}: {k}: {x!r} != {y!r}"


def test_two_runs_of_the_pipeline_are_identical(tmp_path):
    from egrpo_jax.e2e.pipeline import run_pipeline

    pc = micro_config()
    pc.sft.train.steps = 4
    pc.rl.train.steps = 2
    results = [run_pipeline(pc, str(tmp_path / f"run{i}"), progress=False, log=lambda _: None) for i in (0, 1)]
    for sub in ("sft/logs/sft/metrics.jsonl", "rl/logs/metrics.jsonl"):
        a, b = (_rows(tmp_path / f"run{i}" / sub) for i in (0, 1))
        assert len(a) == len(b) > 0
        for ra, rb in zip(a, b):
            _same(ra, rb, f"{sub} step {ra['step']}")
    for name in ("eval_sft", "eval_rl"):
        a, b = (json.loads((tmp_path / f"run{i}" / name / "summary.json").read_text()) for i in (0, 1))
        _same({k: v for k, v in a.items() if not _timing(k)}, {k: v for k, v in b.items() if not _timing(k)}, name)
        ra, rb = ((tmp_path / f"run{i}" / name / "rollouts.jsonl").read_text() for i in (0, 1))
        assert ra == rb, f"{name}: rollouts differ"
    assert results[0]["table"] == results[1]["table"]
    for key in ("before", "after"):
        _same(*({k: v for k, v in r[key].items() if not _timing(k)} for r in results), key)
