"""Search outages are loud: a dead backend fails `train` at start; failing steps warn, then stop the run."""

import pytest
from test_train_loop import _biased_model

from egrpo_jax import cli
from egrpo_jax.testing.scripted import ACTION_ANSWER as ANSWER
from egrpo_jax.testing.scripted import ACTION_CALL as CALL
from egrpo_jax.testing.scripted import ActionTokenizer
from egrpo_jax.assembly import sampling_params, tool_config
from egrpo_jax.config import load_config
from egrpo_jax.data.io import write_questions
from egrpo_jax.data.schema import Document, Entity, QARecord
from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.metrics_log import read_metrics
from egrpo_jax.rl.loop import run_train
from egrpo_jax.sampling.engine import Engine
from egrpo_jax.tools.bm25 import Bm25Index
from egrpo_jax.tools.health import FailureWatch, SearchOutage
from egrpo_jax.tools.registry import ToolSet

DOCS = [Document("d1", "Paris", "Paris is the capital of France."), Document("d2", "Rome", "Rome is in Italy.")]
QS = [QARecord("q1", "Capital of France?", "Paris", (), (Entity("found"),)),
      QARecord("q2", "Capital of Italy?", "Rome", (), (Entity("look"),))]


def _metrics(failed, total):
    return {"agent/tool_calls/failed": float(failed), "agent/tool_calls/total": float(total)}


def test_failure_watch_warns_resets_and_stops(caplog):
    w = FailureWatch(0.5, 3)
    with caplog.at_level("WARNING", logger="egrpo_jax.tools.health"):
        w.update(1, _metrics(6, 8))
        w.update(2, _metrics(4, 8))  # exactly at the threshold: fine, and it resets the count
        w.update(3, _metrics(0, 0))  # no calls at all: nothing failed
        w.update(4, _metrics(8, 8))
        w.update(5, _metrics(8, 8))
        with pytest.raises(SearchOutage, match="step 6: tool calls failed above 50% for 3 steps in a row"):
            w.update(6, _metrics(3, 3))
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0] == "step 1: 6 of 8 tool calls failed (75% > search.failure_warn_rate 50%), 1 step(s) in a row"
    assert len(msgs) == 4 and all("\n" not in m for m in msgs)
    never = FailureWatch(0.5, 0)
    for step in range(10):
        never.update(step, _metrics(1, 1))
    assert never.bad_steps == 10


def test_train_with_search_down_fails_at_start_in_one_line(tmp_path, capsys):
    write_questions(tmp_path / "q.jsonl", QS)
    rc = cli.main(["train", "--config.model.tokenizer=byte", f"--config.data.questions={tmp_path}/q.jsonl",
                   "--config.search.backend=http", "--config.search.url=http://127.0.0.1:9",
                   f"--config.checkpoint.dir={tmp_path}/ckpt", "--config.logging.progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("egrpo train: search backend http://127.0.0.1:9 is not answering (")
    assert not (tmp_path / "ckpt").exists() or not any(p.name.isdigit() for p in (tmp_path / "ckpt").iterdir())


class _DiesAfterProbe:
    """Answers the start-up probe, then every search and visit fails (the server went away)."""

    def __init__(self, index):
        self.index, self.calls = index, 0

    def search(self, queries, topk):
        self.calls += 1
        if self.calls == 1:
            return self.index.search(queries, topk)
        raise ConnectionRefusedError("connection refused")

    def fetch(self, ids):
        raise ConnectionRefusedError("connection refused")


def test_failing_steps_warn_then_stop_the_run_and_keep_the_checkpoints(tmp_path, caplog):
    write_questions(tmp_path / "q.jsonl", QS)
    cfg = load_config(None, [
        f"data.questions={tmp_path}/q.jsonl", "data.batch_size=2", "rl.group_size=4", "search.topk=1",
        "agent.prompt_style=short", "agent.max_total_tokens=1024", "agent.max_tool_calls=3", "optim.lr=1e-3",
        "train.steps=6", "search.failure_stop_steps=2", f"checkpoint.dir={tmp_path}/ckpt", "checkpoint.every=1",
        f"logging.dir={tmp_path}/logs", "logging.progress=false",
    ])
    mesh = single_device_mesh()
    model, tok = _biased_model(mesh), ActionTokenizer()
    engine = Engine(model, num_rows=8, max_len=1024, sampling=sampling_params(cfg), mesh=mesh,
                    stop_sequences=[[CALL], [ANSWER]], eos_ids=tok.eos_ids)
    tools = ToolSet(_DiesAfterProbe(Bm25Index.build(DOCS)), tool_config(cfg), tokenizer=tok)
    with caplog.at_level("WARNING", logger="egrpo_jax.tools.health"), tools:
        with pytest.raises(SearchOutage, match="step 2: tool calls failed above 50% for 2 steps in a row"):
            run_train(cfg, model=model, tokenizer=tok, tools=tools, mesh=mesh, engine=engine)
    warned = [r.getMessage() for r in caplog.records if r.name == "egrpo_jax.tools.health"]
    assert [m.split(":")[0] for m in warned] == ["step 1", "step 2"]
    rows = read_metrics(str(tmp_path / "logs"))
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["agent/tool_calls/failed"] == r["agent/tool_calls/total"] > 0 for r in rows)
    # step 1 was saved; the run stopped before saving step 2 (trained on failing tools)
    assert sorted(int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit()) == [1]
