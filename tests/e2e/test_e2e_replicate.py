"""replicate's aggregation: paired differences, mean ± std tables, correlation, curves."""

import json
from pathlib import Path

import numpy as np
import pytest

from egrpo_jax.e2e.replicate import (
    GRPO,
    RUN_MARKER,
    SFT_LABEL,
    Arm,
    _fresh_run_dir,
    _reused,
    match_accuracy_corr,
    run_record,
)
from egrpo_jax.e2e.replicate_report import aggregate

QUESTIONS = [f"q{i}" for i in range(20)]


def _summary(p1, p3, tools, corr, ch, wh):
    return {"pass@1": p1, "pass@3": p3, "tool_calls/mean": tools, "train/tool_calls": tools + 0.5,
            "train/accuracy": p1, "entity_match/correct": 0.9, "entity_match/wrong": 0.4, "entity_corr": corr,
            "entity_comparison": {"correct_higher": ch, "wrong_higher": wh}}


def _rec(arm, seed, p1, tools):
    """A run whose first round(20 * p1) questions are all right (3 of 3 samples), the rest all wrong."""
    rows = [{"step": s, "tool_calls/per_rollout": tools + 0.1 * s, "accuracy": p1, "reward/mean": p1,
             "entity_match/all": 0.5} for s in (1, 2, 3)]
    n = round(20 * p1)
    per_q = {q: ((1.0, 1.0) if i < n else (0.0, 0.0)) for i, q in enumerate(QUESTIONS)}
    return {"arm": arm.label if arm else SFT_LABEL, "alpha": arm.alpha if arm else -1.0,
            "schedule": arm.schedule if arm else "", "seed": seed, "per_question": per_q,
            "summary": _summary(p1, p1, tools, 0.5, 3, 1), "training": rows}


def test_match_accuracy_corr_matches_numpy():
    rolls = [{"match_rate": m, "correct": c} for m, c in [(1.0, True), (0.5, False), (0.0, False), (1.0, False),
                                                          (None, True)]]
    x, y = np.array([1.0, 0.5, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 0.0])
    assert match_accuracy_corr(rolls) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert match_accuracy_corr([{"match_rate": 0.5, "correct": True}] * 3) is None  # no spread


def test_aggregate_micro(tmp_path):
    e03 = Arm(0.3)
    recs = [_rec(None, -1, 0.20, 2.0)]
    for seed, (g, e) in enumerate([(0.30, 0.40), (0.20, 0.25), (0.25, 0.40)]):
        recs.append(_rec(GRPO, seed, g, 2.0))
        recs.append(_rec(e03, seed, e, 1.5))
    path = aggregate(recs, tmp_path, notes=["micro"])
    text = path.read_text()
    # mean ± sample std of Pass@1 for GRPO: 25.0% ± 5.0%
    assert "| GRPO (alpha=0) | 3 | 25.0% ± 5.0% |" in text
    assert "| SFT (no RL) | 1 | 20.0% |" in text
    assert "| E-GRPO (alpha=0.3) | 9 | 3 |" in text  # entity counts summed over seeds
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["groups"]) == {"SFT (no RL)", "GRPO (alpha=0)", "E-GRPO (alpha=0.3)"}
    # E-GRPO - GRPO per seed: +10, +5, +15 points -> +10.0; every question's difference is 0 or 1 with
    # the same pattern, so the interval is from the bootstrap over the 20 questions
    d = summary["paired"]["E-GRPO (alpha=0.3)"]["pass@1 vs GRPO"]
    assert d["mean"] == pytest.approx(0.10) and d["lo"] < 0.10 < d["hi"] and (d["seeds"], d["questions"]) == (3, 20)
    assert summary["paired"]["GRPO (alpha=0)"]["pass@1 vs SFT"]["mean"] == pytest.approx(0.05)
    assert "| E-GRPO (alpha=0.3) | 3 | +10.0 [" in text
    # over runs (Student t, 2 df): E-GRPO minus GRPO +10, +5, +15 points; GRPO minus SFT +10, 0, +5
    assert "| +10.0 [-2.4, +22.4] |" in text and "| +5.0 [-7.4, +17.4] |" in text
    assert summary["paired"]["E-GRPO (alpha=0.3)"]["pass@1 vs GRPO, over runs"]["sd"] == pytest.approx(0.05)
    assert "Pass@1 over 3 runs +10.0 [-2.4, +22.4], sd 5.0: these runs find a true difference of 15.5 points" in text
    assert "3. E-GRPO uses fewer tool calls per rollout in training: holds (-0.500" in text
    assert "1. Correct rollouts mention more ground-truth entities than wrong ones: holds" in text
    for name in ("tool_calls_per_rollout", "accuracy", "reward_mean", "entity_match_all", "alpha_curve"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 0


def test_decay_arm_is_its_own_group_and_labelled():
    assert Arm(0.3, "linear").label == "E-GRPO (alpha 0.3 -> 0)" and Arm(0.3, "linear").name == "alpha0.3-decay"
    assert GRPO.label == "GRPO (alpha=0)"


def test_replicate_never_deletes_a_folder_it_did_not_create(tmp_path):
    foreign = tmp_path / "runs" / "alpha0_seed0"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not created by egrpo replicate"):
        _fresh_run_dir(str(foreign))
    assert (foreign / "notes.txt").read_text() == "mine"
    ours = tmp_path / "runs" / "alpha0_seed1"
    _fresh_run_dir(str(ours))
    (ours / "partial.txt").write_text("interrupted")
    _fresh_run_dir(str(ours))  # an interrupted run of ours starts again
    assert sorted(p.name for p in ours.iterdir()) == [RUN_MARKER]


def test_a_finished_run_is_reused_only_for_the_same_steps_arm_and_questions():
    rec = {"training": [{"step": i} for i in (1, 2, 3)], "per_question": {q: (1.0, 1.0) for q in QUESTIONS},
           "alpha": 0.3, "schedule": "constant"}
    assert _reused(rec, "runs/x", Arm(0.3), 3, 20) is rec
    for arm, steps, questions, what in ((Arm(0.3), 10, 20, "3 RL steps"), (Arm(0.3), 3, 300, "20 questions"),
                                        (GRPO, 3, 20, "alpha 0.3"), (Arm(0.3, "linear"), 3, 20, "constant")):
        with pytest.raises(ValueError, match=f"runs/x: a finished run of .*{what}"):
            _reused(rec, "runs/x", arm, steps, questions)
    sft = {"training": [], "per_question": rec["per_question"], "alpha": -1.0, "schedule": ""}
    assert _reused(sft, "eval_sft", None, 0, 20) is sft
    with pytest.raises(ValueError, match="eval_sft: a finished run of 0 RL steps, 20 questions"):
        _reused(sft, "eval_sft", None, 0, 48)


def test_run_record_reads_eval_folder(tmp_path):
    from egrpo_jax.eval.metrics import RolloutScore
    from egrpo_jax.eval.report import write_run_report

    def score(q, s, correct, matched):
        return RolloutScore(q, s, "answered", None, "x", correct, float(correct), 2, 10, 20, 3, matched)

    scores = [score("a", 0, True, 3), score("a", 1, False, 1), score("b", 0, False, 0), score("b", 1, True, 2)]
    write_run_report(tmp_path, scores, ks=[1, 2])
    rec = run_record(str(tmp_path), [{"step": 1, "tool_calls/per_rollout": 2.0, "accuracy": 0.5},
                                     {"step": 2, "tool_calls/per_rollout": 3.0, "accuracy": float("nan")}],
                     arm=Arm(0.3), seed=1)
    s = rec["summary"]
    assert s["train/tool_calls"] == 2.5 and s["train/accuracy"] == 0.5
    x, y = np.array([1, 1 / 3, 0, 2 / 3]), np.array([1.0, 0, 0, 1])
    assert s["entity_corr"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert s["pass@1"] == 0.5 and s["entity_comparison"]["correct_higher"] == 2
    assert rec["per_question"] == {"a": (0.5, 1.0), "b": (0.5, 1.0)} and rec["arm"] == "E-GRPO (alpha=0.3)"


def test_run_store_reuses_only_records_of_the_same_start(tmp_path):
    from egrpo_jax.e2e.grid_store import RunStore

    fp = {"sft_params": "aa", "sft_eval": "bb", "settings": "cc"}
    store = RunStore(tmp_path, fp)
    assert store.get("alpha0_seed0") is None
    store.put_start({"sft": {"arm": SFT_LABEL}})
    rec = _rec(GRPO, 0, 0.3, 2.0)
    store.put("alpha0_seed0", rec)
    assert json.loads(json.dumps(rec)) == RunStore(tmp_path, fp).get("alpha0_seed0")
    assert not list(tmp_path.rglob("*.tmp"))  # written whole, then renamed
    # the refusal names the machine the start was recorded on and this one (another CPU's arithmetic)
    machine = json.loads((tmp_path / "start.json").read_text())["machine"]
    assert machine["cores"] >= 1 and "xla_cpu_max_isa=AVX2" in machine["xla_flags"]
    with pytest.raises(ValueError, match=r"start.json: recorded from another start \(sft_params differ: aa vs zz; "
                                         r"recorded on .+ cores, XLA_FLAGS=.+, this is .+ cores, .+\)"):
        RunStore(tmp_path, {**fp, "sft_params": "zz"})
    # a run record written under another start, next to this start's start.json: refused too
    other = RunStore(tmp_path / "x", {**fp, "settings": "dd"})
    other.put("alpha0_seed1", rec)
    (tmp_path / "runs" / "alpha0_seed1.json").write_bytes((tmp_path / "x" / "runs" / "alpha0_seed1.json").read_bytes())
    with pytest.raises(ValueError, match=r"alpha0_seed1.json: recorded from another start \(settings differ"):
        store.get("alpha0_seed1")
    (tmp_path / "runs" / "bare.json").write_text(json.dumps(rec))  # a record without a fingerprint
    with pytest.raises(ValueError, match=r"bare.json: recorded from another start \(settings, sft_eval, sft_params differ"):
        store.get("bare")


def test_a_start_continued_on_another_machine_keeps_the_machine_that_trained_it(tmp_path):
    from egrpo_jax.e2e.grid_store import RunStore
    from egrpo_jax.runtime import machine_facts

    fp = {"sft_params": "aa", "sft_eval": "bb", "settings": "cc"}
    start = tmp_path / "start.json"
    RunStore(tmp_path, fp).put_start({"sft": {"arm": SFT_LABEL}})
    head = json.loads(start.read_text())
    assert head["machine"] == machine_facts() and head["reproduced_on"] == []
    RunStore(tmp_path, fp).put_start({"sft": {"arm": SFT_LABEL}})  # again here: nothing to add
    assert json.loads(start.read_text())["reproduced_on"] == []
    first = {**head["machine"], "cpu": "First CPU (family 1 model 2)"}
    start.write_text(json.dumps({**head, "machine": first, "commit": "0000000"}))
    for _ in range(2):  # a second continuation on this machine is not listed twice
        RunStore(tmp_path, fp).put_start({"sft": {"arm": SFT_LABEL}, "data_sha256": "ff"})
    got = json.loads(start.read_text())
    assert got["machine"] == first and got["commit"] == "0000000" and got["data_sha256"] == "ff"
    assert [r["machine"] for r in got["reproduced_on"]] == [machine_facts()]


def test_a_grid_recorded_with_other_arithmetic_is_refused_before_anything_is_trained(tmp_path):
    from egrpo_jax.e2e.grid_store import RunStore, check_arithmetic
    from egrpo_jax.e2e.replicate import run_replicate
    from egrpo_jax.e2e.settings import load_pipeline_config

    check_arithmetic(tmp_path)  # no grid recorded yet
    RunStore(tmp_path, {"sft_params": "aa"}).put_start({"sft": {"arm": SFT_LABEL}})
    check_arithmetic(tmp_path)  # recorded here: same probe
    start = tmp_path / "start.json"
    head = json.loads(start.read_text())
    here = head["machine"]["probe"]
    head["machine"].update(cpu="Other CPU (family 1 model 2)", probe="0123456789abcdef")
    start.write_text(json.dumps(head))
    with pytest.raises(ValueError, match=r"start.json: recorded on Other CPU .+ arithmetic probe 0123456789abcdef; "
                                         rf"this is .+ arithmetic probe {here}: the arithmetic differs"):
        check_arithmetic(tmp_path)
    out = tmp_path / "out"
    pc = load_pipeline_config(str(Path(__file__).parents[2] / "configs" / "replicate_cpu.py"))
    with pytest.raises(ValueError, match="the arithmetic differs"):
        run_replicate(pc, str(out), arms=(GRPO,), seeds=(0,), store_dir=str(tmp_path), progress=False,
                      log=lambda _: None)
    assert not out.exists()  # refused before the data and the SFT start
    del head["machine"]["probe"]  # a grid recorded before the probe was kept: left to the fingerprint
    start.write_text(json.dumps(head))
    check_arithmetic(tmp_path)


def test_params_fingerprint_changes_with_any_parameter():
    import jax.numpy as jnp
    from flax import nnx

    from egrpo_jax.e2e.grid_store import params_sha256

    class Two(nnx.Module):
        def __init__(self):
            self.a = nnx.Param(jnp.arange(6, dtype=jnp.float32).reshape(2, 3))
            self.b = nnx.Param(jnp.ones((4,), jnp.float32))

    m, n = Two(), Two()
    assert params_sha256(m) == params_sha256(n)
    n.b[...] = n.b[...].at[3].set(1.0 + 1e-7)  # one ulp-scale change in one weight
    assert params_sha256(m) != params_sha256(n)


def test_excess_per_step_subtracts_the_drawn_questions_sft_score():
    from egrpo_jax.data.pipeline import QuestionStream
    from egrpo_jax.data.schema import QARecord
    from egrpo_jax.eval.train_curve import excess_per_step, third_means

    records = [QARecord(f"q{i}", f"Q{i}?", "a", (), ()) for i in range(6)]
    sft = {f"q{i}": i / 10 for i in range(6)}
    steps = [{"step": s, "accuracy": 0.5} for s in (1, 2, 3)]
    drawn = QuestionStream(records, 2, seed=4)
    want = [0.5 - sum(sft[q.id] for q in next(drawn)) / 2 for _ in steps]
    assert excess_per_step(steps, records, 2, 4, sft) == pytest.approx(want)
    with pytest.raises(ValueError, match="step 2: 2 rollout rounds"):
        excess_per_step([steps[0], {"step": 2, "accuracy": 0.5, "dynamic/rounds": 2.0}], records, 2, 4, sft)
    with pytest.raises(ValueError, match="has no SFT score"):
        excess_per_step(steps, records, 2, 4, {"q0": 0.0})
    t = third_means([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert t["first"][0] == pytest.approx(0.05) and t["last-first"][0] == pytest.approx(0.4)


def test_report_says_whether_the_training_reward_rose(tmp_path):
    recs = [_rec(None, -1, 0.20, 2.0)]
    recs[0]["rl_per_question"] = {q: (0.5, 1.0) for q in QUESTIONS[:8]}
    for seed, lift in enumerate([0.30, 0.20, 0.25]):  # excess climbs by `lift` from the first to the last third
        g = _rec(GRPO, seed, 0.3, 2.0)
        g["train_excess"] = [0.0, 0.0, 0.0, lift, lift, lift]
        e = _rec(Arm(0.3), seed, 0.3, 2.0)
        e["train_excess"] = [0.1, -0.1, 0.0, 0.1, -0.1, 0.0] if seed else [0.0, 0.1, 0.0, -0.1, 0.0, 0.0]
        recs += [g, e]
    text = aggregate(recs, tmp_path).read_text()
    assert "all 8 rl-split questions, Pass@1 50.0%" in text
    assert "| GRPO (alpha=0) | 3 | +0.0 ± 0.0 | +25.0 ± 5.0 | +25.0 ± 5.0 | yes | 0: +30.0 [+30.0, +30.0];" in text
    assert "| E-GRPO (alpha=0.3) | 3 |" in text and "| no |" in text
    one_seed = aggregate([r for r in recs if r["seed"] <= 0], tmp_path / "one").read_text()
    assert "| GRPO (alpha=0) | 1 | +0.0 ± 0.0 | +30.0 ± 0.0 | +30.0 ± 0.0 | n/a (1 seed) |" in one_seed


def test_report_only_reports_the_recorded_runs_without_running_anything(tmp_path, capsys):
    from egrpo_jax import cli
    from egrpo_jax.e2e.grid_store import RunStore

    store = RunStore(tmp_path, {"sft_params": "aa", "sft_eval": "bb", "settings": "cc"})
    store.put_start({"sft": _rec(None, -1, 0.20, 2.0)})
    store.put("alpha0_seed0", _rec(GRPO, 0, 0.30, 2.0))
    store.put("alpha0.3_seed0", _rec(Arm(0.3), 0, 0.40, 1.5))
    assert cli.main(["replicate", "--report-only", "--docs", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "Report of the 2 runs recorded in" in text and "| E-GRPO (alpha=0.3) | 1 | +10.0 [" in text
    assert not (tmp_path / "data").exists() and not (tmp_path / "sft").exists()
    assert cli.main(["replicate", "--report-only"]) == 2
    assert "--report-only needs --docs DIR" in capsys.readouterr().err
    assert cli.main(["replicate", "--report-only", "--docs", str(tmp_path / "none")]) == 2
    assert "start.json: no such file" in capsys.readouterr().err


def _grid(path, sft_params, sft, grpo, e03, settings="cc"):
    from egrpo_jax.e2e.grid_store import RunStore

    store = RunStore(path, {"sft_params": sft_params, "sft_eval": "bb", "settings": settings})
    store.put_start({"sft": _rec(None, -1, sft, 2.0)})
    store.put("alpha0_seed0", _rec(GRPO, 0, grpo, 2.0))
    store.put("alpha0.3_seed0", _rec(Arm(0.3), 0, e03, 1.5))
    return path


def test_a_pooled_report_pairs_runs_by_start_and_seed_and_each_run_with_its_own_start(tmp_path, capsys):
    """Two grids from two starts (two machines' arithmetic), seed 0 each: E-GRPO - GRPO is +10 points from
    start A and 0 from B (mean +5); RL - SFT is +10 from each own start. Pairing by seed alone would pair A's
    E-GRPO with B's GRPO; comparing with one start would give (+10 + 40) / 2."""
    from egrpo_jax import cli

    a = _grid(tmp_path / "grid-a", "aa", 0.20, 0.30, 0.40)
    b = _grid(tmp_path / "grid-b", "zz", 0.50, 0.60, 0.60)
    out = tmp_path / "pooled"
    assert cli.main(["replicate", "--report-only", "--docs", str(a), "--docs", str(b), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    e = summary["paired"]["E-GRPO (alpha=0.3)"]["pass@1 vs GRPO"]
    assert e["mean"] == pytest.approx(0.05) and e["seeds"] == 2
    g = summary["paired"]["GRPO (alpha=0)"]["pass@1 vs SFT"]
    assert g["mean"] == pytest.approx(0.10) and g["seeds"] == 2
    text = (out / "report.md").read_text()
    assert "Pooled report of 4 runs from 2 grids" in text and "| SFT (no RL) | 2 | 35.0% ± 21.2% |" in text
    assert not (a / "report.md").exists()  # the grids' own folders are left as they were
    # grids of other settings do not pool; several --docs need --out, and only --report-only takes them
    c = _grid(tmp_path / "grid-c", "yy", 0.2, 0.3, 0.3, settings="dd")
    assert cli.main(["replicate", "--report-only", "--docs", str(a), "--docs", str(c), "--out", str(out)]) == 2
    assert "grid-c/start.json: other settings than " in capsys.readouterr().err
    assert cli.main(["replicate", "--report-only", "--docs", str(a), "--docs", str(b)]) == 2
    assert "--report-only with 2 --docs pools them: name the pooled report's folder with --out DIR" in \
        capsys.readouterr().err
    assert cli.main(["replicate", "--docs", str(a), "--docs", str(b)]) == 2
    assert "--docs given 2 times" in capsys.readouterr().err
    assert cli.main(["replicate", "--report-only", "--docs", str(a), "--docs", str(a), "--out", str(out)]) == 2
    assert "a second grid named 'grid-a'" in capsys.readouterr().err


def test_grid_records_under_docs_are_not_ignored_by_git():
    """The records a grid keeps with --docs docs/<grid> (start.json, runs/<name>.json) must be committable:
    a `runs/` pattern in .gitignore once swallowed every run record of docs/replicate-grid."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    for path in ("docs/replicate-grid-pinned/start.json", "docs/replicate-grid-pinned/runs/alpha0_seed0.json",
                 "docs/any-grid/runs/alpha0.3_seed4.json"):
        out = subprocess.run(["git", "check-ignore", "-v", path], cwd=root, capture_output=True, text=True)
        assert out.returncode == 1, f"{path} is ignored by {out.stdout.strip()}"
    # the run folders themselves (checkpoints) stay out of git
    assert subprocess.run(["git", "check-ignore", "-q", "runs/grid/sft/ckpt"], cwd=root).returncode == 0


def test_report_shows_group_composition_and_the_reward_watch_per_arm(tmp_path):
    def with_watch(rec, all_wrong, split, unearned):
        rows = rec["training"]
        for row, w in zip(rows, all_wrong):  # steps 1, 2, 3
            row.update({"groups/all_correct": 0.5 - w / 2, "groups/mixed": 0.5 - w / 2, "groups/all_wrong": w,
                        "groups/all_wrong_split": split, "hacking/think_tokens": 40.0,
                        "hacking/entities_per_thought": 0.5, "hacking/unearned_share": unearned})
        return rec

    recs = [_rec(None, -1, 0.2, 2.0),
            with_watch(_rec(GRPO, 0, 0.3, 2.0), [0.6, 0.3, 0.0], 0.0, 0.1),
            with_watch(_rec(GRPO, 1, 0.3, 2.0), [0.8, 0.5, 0.2], 0.0, 0.3),
            _rec(Arm(0.3), 0, 0.4, 2.0)]  # a record from before the watch was logged: left out
    text = aggregate(recs, tmp_path).read_text()
    assert "## Group composition and reward watch" in text
    # all wrong: run means 0.3 and 0.5 -> 40.0% ± 14.1%; at step 1: 0.6, 0.8 -> 70.0% ± 14.1%;
    # all correct = mixed = (1 - all wrong) / 2 -> 30.0% ± 7.1%; unearned 10% and 30% -> 20.0% ± 14.1%
    assert ("| GRPO (alpha=0) | 2 | 30.0% ± 7.1% | 30.0% ± 7.1% | 40.0% ± 14.1% | 0.0% ± 0.0% | 70.0% ± 14.1% | "
            "40.00 ± 0.00 | 0.50 ± 0.00 | 20.0% ± 14.1% |") in text
    assert "| E-GRPO (alpha=0.3) | 1 | 30.0%" not in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["groups/all_wrong, step 1"] for r in summary["training_watch"]["GRPO (alpha=0)"]] == [0.6, 0.8]
    # records without the metrics (the grids recorded before issue 31): no section, summary as before
    plain = aggregate([_rec(None, -1, 0.2, 2.0), _rec(GRPO, 0, 0.3, 2.0)], tmp_path / "plain").read_text()
    assert "Group composition" not in plain
    assert "training_watch" not in json.loads((tmp_path / "plain" / "summary.json").read_text())


def test_new_config_keys_at_their_neutral_value_keep_the_recorded_grids_continuable():
    """The committed grids were fingerprinted before rl.reward / rl.entity_credit existed: at "egrpo" /
    "thought" (the runs as before) they are left out of the settings hash (grid_store.KEYS_ADDED), so
    `egrpo replicate --docs docs/replicate-grid-zen5` still matches; another value is another setting."""
    from egrpo_jax.e2e.grid_store import settings_sha256
    from egrpo_jax.e2e.settings import load_pipeline_config

    pc = load_pipeline_config("configs/replicate_cpu.py")
    recorded = json.loads(Path("docs/replicate-grid-zen5/start.json").read_text())["fingerprint"]["settings"]
    assert settings_sha256(pc.rl, pc.pipeline) == recorded
    pc.rl.model.lora.alpha = 8.0  # LoRA off (rank 0): its other keys change nothing
    assert settings_sha256(pc.rl, pc.pipeline) == recorded
    pc.rl.model.lora.rank = 8
    assert settings_sha256(pc.rl, pc.pipeline) != recorded
    pc.rl.model.lora.rank = 0
    pc.rl.rl.entity_credit = "grounded"
    assert settings_sha256(pc.rl, pc.pipeline) != recorded
