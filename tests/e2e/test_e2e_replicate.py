"""replicate's aggregation: paired differences, mean ± std tables, correlation, curves."""

import json

import numpy as np
import pytest

from egrpo_jax.e2e.replicate import aggregate, match_accuracy_corr, run_record


def _summary(p1, p3, tools, corr, ch, wh):
    return {"pass@1": p1, "pass@3": p3, "tool_calls/mean": tools, "train/tool_calls": tools + 0.5,
            "train/accuracy": p1, "entity_match/correct": 0.9, "entity_match/wrong": 0.4, "entity_corr": corr,
            "entity_comparison": {"correct_higher": ch, "wrong_higher": wh}}


def _rec(alpha, seed, p1, tools):
    rows = [{"step": s, "tool_calls/per_rollout": tools + 0.1 * s, "accuracy": p1, "reward/mean": p1,
             "entity_match/all": 0.5} for s in (1, 2, 3)]
    return {"alpha": alpha, "seed": seed, "summary": _summary(p1, p1 + 0.1, tools, 0.5, 3, 1), "training": rows}


def test_match_accuracy_corr_matches_numpy():
    rolls = [{"match_rate": m, "correct": c} for m, c in [(1.0, True), (0.5, False), (0.0, False), (1.0, False),
                                                          (None, True)]]
    x, y = np.array([1.0, 0.5, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 0.0])
    assert match_accuracy_corr(rolls) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert match_accuracy_corr([{"match_rate": 0.5, "correct": True}] * 3) is None  # no spread


def test_aggregate_micro(tmp_path):
    recs = [_rec(-1.0, -1, 0.2, 2.0)]
    for seed, (g, e) in enumerate([(0.30, 0.40), (0.20, 0.25), (0.25, 0.40)]):
        recs.append(_rec(0.0, seed, g, 2.0))
        recs.append(_rec(0.3, seed, e, 1.5))
    path = aggregate(recs, tmp_path, notes=["micro"])
    text = path.read_text()
    # E-GRPO - GRPO per seed: +10, +5, +15 points -> mean +10.0, sample std 5.0
    assert "| E-GRPO (alpha=0.3) | 3 | +10.0 ± 5.0 | +10.0 ± 5.0 | -0.500 ± 0.000 |" in text
    # mean ± sample std of Pass@1 for GRPO: 25.0% ± 5.0%
    assert "| GRPO (alpha=0) | 3 | 25.0% ± 5.0% |" in text
    assert "| SFT (no RL) | 1 | 20.0% |" in text
    assert "| E-GRPO (alpha=0.3) | 9 | 3 |" in text  # entity counts summed over seeds
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["groups"]) == {"SFT (no RL)", "GRPO (alpha=0)", "E-GRPO (alpha=0.3)"}
    for name in ("tool_calls_per_rollout", "accuracy", "reward_mean", "entity_match_all"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 0


def test_run_record_reads_eval_folder(tmp_path):
    from egrpo_jax.eval.metrics import RolloutScore
    from egrpo_jax.eval.report import write_run_report

    def score(q, s, correct, matched):
        return RolloutScore(q, s, "answered", None, "x", correct, float(correct), 2, 10, 20, 3, matched)

    scores = [score("a", 0, True, 3), score("a", 1, False, 1), score("b", 0, False, 0), score("b", 1, True, 2)]
    write_run_report(tmp_path, scores, ks=[1, 2])
    rec = run_record(str(tmp_path), [{"step": 1, "tool_calls/per_rollout": 2.0, "accuracy": 0.5},
                                     {"step": 2, "tool_calls/per_rollout": 3.0, "accuracy": float("nan")}],
                     alpha=0.3, seed=1)
    s = rec["summary"]
    assert s["train/tool_calls"] == 2.5 and s["train/accuracy"] == 0.5
    x, y = np.array([1, 1 / 3, 0, 2 / 3]), np.array([1.0, 0, 0, 1])
    assert s["entity_corr"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert s["pass@1"] == 0.5 and s["entity_comparison"]["correct_higher"] == 2
