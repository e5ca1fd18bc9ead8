import json

import pytest
from eval_fixtures import PNG_SIGNATURE, mention, record, traj

from egrpo_jax.agent.trajectory import FORMAT_ERROR
from egrpo_jax.eval import analysis
from egrpo_jax.eval.metrics import score_rollouts

ENTS = ["Aldora", "Brenvik", "Calloway", "Dunmore"]


def constructed_scores():
    """Seven questions built so the per-question comparison is known by hand."""
    recs = [
        record("q1", "yes", ENTS),  # correct 1.0, .5 (mean .75) vs wrong .25 -> correct higher
        record("q2", "yes", ENTS[:2]),  # correct .5 vs wrong 1.0 -> wrong higher
        record("q3", "yes", ENTS[:2]),  # .5 vs .5 -> tie
        record("q4", "yes", ENTS[:2]),  # all correct
        record("q5", "yes", ENTS[:2]),  # all wrong
        record("q6", "yes", []),  # no entities: skipped
        record("q7", "yes", ENTS[:2]),  # correct .5 vs format error 0 -> correct higher
    ]
    trajs = [
        traj("q1", "yes", mention(*ENTS)),
        traj("q1", "yes", mention("Aldora", "Brenvik")),
        traj("q1", "no", mention("Calloway")),
        traj("q2", "yes", mention("Aldora")),
        traj("q2", "no", mention("Aldora", "Brenvik")),
        traj("q3", "yes", mention("Aldora")),
        traj("q3", "no", mention("Brenvik")),
        traj("q4", "yes", mention("Aldora")),
        traj("q4", "yes", mention()),
        traj("q5", "no", mention()),
        traj("q5", "no", mention("Aldora", "Brenvik")),
        traj("q6", "yes", mention()),
        traj("q6", "no", mention()),
        traj("q7", "yes", mention("Brenvik")),
        traj("q7", None, mention(), status=FORMAT_ERROR),
    ]
    return score_rollouts(trajs, recs)


def test_entity_comparison_counts():
    c = analysis.entity_comparison(constructed_scores())
    assert (c.correct_higher, c.wrong_higher, c.ties) == (2, 1, 1)
    assert (c.mixed_questions, c.questions, c.all_correct, c.all_wrong) == (4, 6, 1, 1)


def test_match_rate_histogram_counts_and_density():
    h = analysis.match_rate_histogram(constructed_scores(), bins=4)
    assert h["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # correct rates: q1 1.0 .5, q2 .5, q3 .5, q4 .5 0, q7 .5
    assert h["correct"] == [1, 0, 5, 1] and h["correct_n"] == 7
    # wrong rates: q1 .25, q2 1.0, q3 .5, q5 0 1.0, q7 0
    assert h["wrong"] == [2, 1, 1, 2] and h["wrong_n"] == 6
    assert sum(d / 4 for d in h["correct_density"]) == pytest.approx(1.0)
    assert h["wrong_density"][0] == pytest.approx(2 * 4 / 6)


def test_accuracy_by_entities_matched_and_rate():
    scores = constructed_scores()
    rows = analysis.accuracy_by_entities_matched(scores)
    assert [(r["matched"], r["rollouts"], r["correct"]) for r in rows] == [
        (0, 3, 1),
        (1, 6, 4),
        (2, 3, 1),
        (4, 1, 1),
    ]
    assert rows[1]["accuracy"] == pytest.approx(4 / 6)
    by_rate = analysis.accuracy_by_match_rate(scores, bins=2)
    # [0, .5): 0 0 0 .25 -> 1 correct of 4; [.5, 1]: 9 correct-or-not, 6 correct
    assert [(r["rollouts"], r["correct"]) for r in by_rate] == [(4, 1), (9, 6)]


def test_plots_are_png(tmp_path):
    scores = constructed_scores()
    p1 = analysis.plot_match_rate_distribution(
        analysis.match_rate_histogram(scores), tmp_path / "a" / "h.png"
    )
    p2 = analysis.plot_accuracy_by_matched(
        analysis.accuracy_by_entities_matched(scores), tmp_path / "acc.png"
    )
    for p in (p1, p2):
        data = p.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 2000


def _write_metrics(path, steps, seed=0):
    with path.open("w") as f:
        for s in range(steps):
            row = {
                "step": s,
                "reward/mean": 0.1 * s + seed,
                "accuracy": 0.05 * s,
                "tool_calls/mean": 3 - 0.1 * s,
                "entity_match/correct": 0.6,
                "entity_match/wrong": 0.3,
            }
            f.write(json.dumps(row) + "\n")
        f.write("\n")


def test_training_curves_from_jsonl(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_metrics(path, 6)
    rows = analysis.read_metrics_jsonl(path)
    assert len(rows) == 6
    assert analysis.series(rows, "tool_calls/mean")[1][:2] == [3.0, pytest.approx(2.9)]
    out = analysis.plot_training_curves(rows, tmp_path / "curves.png")
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    # custom key names and a panel with no data still plot
    out2 = analysis.plot_training_curves(
        rows, tmp_path / "c2.png", panels={"r": ("reward/mean",), "x": ("missing",)}
    )
    assert out2.read_bytes().startswith(PNG_SIGNATURE)


def test_grouped_curves_mean_and_std(tmp_path):
    runs = []
    for seed in (0, 1):
        p = tmp_path / f"m{seed}.jsonl"
        _write_metrics(p, 3, seed=seed)
        runs.append(analysis.read_metrics_jsonl(p))
    steps, mean, std, count = analysis.grouped_series(runs, "reward/mean")
    assert steps.tolist() == [0, 1, 2] and count.tolist() == [2, 2, 2]
    assert mean.tolist() == pytest.approx([0.5, 0.6, 0.7]) and std.tolist() == pytest.approx([0.5] * 3)
    out = analysis.plot_grouped_curves(
        {"GRPO": runs, "E-GRPO": runs[:1]}, "tool_calls/mean", tmp_path / "g.png"
    )
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_bad_metrics_line_names_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 0}\n{"step": 1,\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:2: not valid JSON"):
        analysis.read_metrics_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"m\.jsonl:1: expected a JSON object, got list"):
        analysis.read_metrics_jsonl(path)
