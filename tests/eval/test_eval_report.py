import json

import pytest
from eval_fixtures import PNG_SIGNATURE
from test_eval_analysis import _write_metrics, constructed_scores

from egrpo_jax.eval import analysis, report


def test_write_run_report_files(tmp_path):
    mpath = tmp_path / "metrics.jsonl"
    _write_metrics(mpath, 5)
    paths = report.write_run_report(
        tmp_path / "run",
        constructed_scores(),
        title="tiny eval",
        ks=[1, 2],
        meta={"model": "tiny", "k": 2},
        training_rows=analysis.read_metrics_jsonl(mpath),
    )
    assert set(paths) == {
        "summary",
        "rollouts",
        "match_rate_plot",
        "accuracy_plot",
        "training_plot",
        "report",
    }
    for key in ("match_rate_plot", "accuracy_plot", "training_plot"):
        data = paths[key].read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 2000
    summary = json.loads(paths["summary"].read_text())
    assert (
        summary["entity_comparison"]["correct_higher"] == 2
        and summary["entity_comparison"]["wrong_higher"] == 1
    )
    assert summary["meta"] == {"model": "tiny", "k": 2}
    assert summary["questions"] == 7 and summary["rollouts"] == 15
    assert summary["pass@2"] == pytest.approx(6 / 7)  # all but q5 have a correct sample
    lines = paths["rollouts"].read_text().splitlines()
    assert len(lines) == 15 and json.loads(lines[0])["question_id"] == "q1"
    md = paths["report"].read_text()
    assert md.startswith("# tiny eval\n")
    assert "| model | tiny |" in md
    assert "| pass@2 | 85.7% |" in md
    assert "higher mean entity match rate in **2** of them, wrong rollouts in **1**, ties in 1" in md
    assert "![match_rate_plot](plots/match_rate.png)" in md
    assert "![training_plot](plots/training_curves.png)" in md
    assert report.load_summary(tmp_path / "run")["pass@1"] == summary["pass@1"]


def test_report_without_training_rows_has_no_curve(tmp_path):
    paths = report.write_run_report(tmp_path, constructed_scores(), ks=[1])
    assert "training_plot" not in paths and not (tmp_path / "plots" / "training_curves.png").exists()


def test_aggregate_and_comparison_table():
    grpo = [
        {"pass@1": 0.5, "tool_calls/mean": 3.0, "entity_comparison": {"correct_higher": 4}},
        {"pass@1": 0.6, "tool_calls/mean": 2.0, "entity_comparison": {"correct_higher": 6}},
        {"pass@1": 0.7, "tool_calls/mean": 1.0, "entity_comparison": {"correct_higher": 8}},
    ]
    egrpo = [{"pass@1": 0.65, "tool_calls/mean": None}]
    agg = report.aggregate(grpo, ["pass@1", "entity_comparison.correct_higher", "absent"])
    assert agg["pass@1"]["mean"] == pytest.approx(0.6) and agg["pass@1"]["std"] == pytest.approx(0.1)
    assert agg["pass@1"]["n"] == 3 and agg["pass@1"]["min"] == 0.5 and agg["pass@1"]["max"] == 0.7
    assert agg["entity_comparison.correct_higher"]["mean"] == 6.0
    assert agg["absent"]["n"] == 0 and agg["absent"]["mean"] is None
    table = report.comparison_table({"GRPO": grpo, "E-GRPO": egrpo}, ["pass@1", "tool_calls/mean"])
    assert table == (
        "| run | seeds | pass@1 | tool_calls/mean |\n"
        "|---|---|---|---|\n"
        "| GRPO | 3 | 60.0% ± 10.0% | 2.00 ± 1.00 |\n"
        "| E-GRPO | 1 | 65.0% | n/a |\n"
    )


def test_load_summary_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json: no summary"):
        report.load_summary(tmp_path)
    (tmp_path / "summary.json").write_text("{\n  oops\n")
    with pytest.raises(ValueError, match=r"summary\.json:2: not valid JSON"):
        report.load_summary(tmp_path)
