"""metrics.jsonl holds each step once after a resume."""

from egrpo_jax.metrics_log import MetricsLogger, read_metrics


def test_a_resumed_run_drops_the_steps_it_logs_again(tmp_path, caplog):
    log = MetricsLogger(str(tmp_path), progress=False)
    for step in range(1, 6):  # the killed run got to step 5; its last checkpoint was step 3
        log.log(step, {"loss": float(step)})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # torn by the kill
    with caplog.at_level("WARNING", logger="egrpo_jax.metrics_log"):
        log = MetricsLogger(str(tmp_path), progress=False, initial=3)
    for step in range(4, 7):
        log.log(step, {"loss": 10.0 * step})
    log.close()
    rows = read_metrics(str(tmp_path))
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == [1.0, 2.0, 3.0, 40.0, 50.0, 60.0]
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.endswith("metrics.jsonl: dropped 3 row(s) after step 3 (this run logs those steps again)")


def test_the_progress_bar_shows_whole_labels():
    # keys like entity_match/all and reward/mean used to be cut to `all=` and `mean=`
    from egrpo_jax.rl.loop import PROGRESS

    log = MetricsLogger("", progress=False, shown=PROGRESS)
    shown = log.postfix({"reward/mean": 0.25, "entity_match/all": 0.5, "tool_calls/per_rollout": 2.0, "other": 1.0})
    log.close()
    assert shown == {"reward": "0.25", "entity_match": "0.5", "tool_calls": "2"}
