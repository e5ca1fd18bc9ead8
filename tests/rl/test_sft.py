"""SFT: demo tokenisation, the demo stream, and kill -9 / --resume continuing with the same batches."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from egrpo_jax.models.byte_tokenizer import ByteTokenizer
from egrpo_jax.agent.template import render_prompt
from egrpo_jax.metrics_log import read_metrics
from egrpo_jax.rl.sft import DemoStream, load_demos, tokenize_demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _demo(i, correct=True):
    return {
        "id": f"demo-{i}", "question_id": f"q{i}", "question": f"Who founded Org{i}?",
        "segments": [
            {"role": "model", "text": f'<think>search it</think>\n<tool_call>{{"name": "search", "arguments": {{"query": ["Org{i}"]}}}}</tool_call>'},
            {"role": "tool", "text": f"\n<tool_response>\nOrg{i} was founded by P{i}.\n</tool_response>\n"},
            {"role": "model", "text": f"<think>P{i} it is</think>\n<answer>P{i}</answer>"},
        ],
        "correct": correct, "kind": "perfect", "answer": f"P{i}",
    }


def _write_demos(path, n=6):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps(_demo(i, correct=i != n - 1)) + "\n")


def test_tokenize_demo_masks_only_model_segments():
    tok = ByteTokenizer()
    d = _demo(3)
    toks, mask = tokenize_demo(d, tok, prompt_style="short")
    prompt = tok.encode(render_prompt(tok, d["question"], style="short"))
    segs = [tok.encode(s["text"]) for s in d["segments"]]
    assert toks == prompt + segs[0] + segs[1] + segs[2]
    assert mask == [0] * len(prompt) + [1] * len(segs[0]) + [0] * len(segs[1]) + [1] * len(segs[2])


def test_load_demos_errors_and_filter(tmp_path):
    p = tmp_path / "d.jsonl"
    _write_demos(p, 4)
    demos, stats = load_demos(str(p), ByteTokenizer(), prompt_style="short", max_len=400)
    longest = max(len(tokenize_demo(_demo(i), ByteTokenizer(), prompt_style="short")[0]) for i in range(3))
    assert stats == {"kept": 3, "wrong_skipped": 1, "truncated": 3, "longest": longest} and longest > 400
    assert all(len(t) == 400 for t, _ in demos)
    p.write_text(json.dumps(_demo(0)) + "\n{bad\n")
    with pytest.raises(ValueError, match=r"d.jsonl:2: invalid JSON"):
        load_demos(str(p), ByteTokenizer())
    bad = _demo(0)
    bad["segments"][1]["role"] = "user"
    p.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"d.jsonl:1: segments\[1\] must have role"):
        load_demos(str(p), ByteTokenizer())


@pytest.mark.parametrize("change,message", [
    ({"question": 7}, r"d.jsonl:2: field 'question' must be a non-empty string, got int 7"),
    ({"question": None}, r"d.jsonl:2: field 'question' must be a non-empty string"),
    ({"segments": []}, r"d.jsonl:2: field 'segments' must be a non-empty list of \{role, text\}, got list"),
    ({"segments": "text"}, r"d.jsonl:2: field 'segments' must be a non-empty list"),
    ({"segments": [7]}, r"d.jsonl:2: segments\[0\] must have role in"),
    ({"segments": [{"role": "model", "text": 3}]}, r"d.jsonl:2: segments\[0\] must have role in"),
    ({"segments": [{"role": "tool", "text": "no wrapper"}]}, r"d.jsonl:2: segments\[0\] \(tool\) must be a tool response"),
    ({"correct": "yes"}, r"d.jsonl:2: field 'correct' must be true or false"),
])
def test_demo_lines_with_wrong_types_are_file_line_errors(tmp_path, change, message):
    from egrpo_jax.data.io import DataError

    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(_demo(0)) + "\n" + json.dumps({**_demo(1), **change}) + "\n")
    with pytest.raises(DataError, match=message) as e:
        load_demos(str(p), ByteTokenizer())
    assert "\n" not in str(e.value)


def test_demo_file_with_invalid_utf8_is_a_file_line_error(tmp_path):
    from egrpo_jax.data.io import DataError

    p = tmp_path / "d.jsonl"
    p.write_bytes(json.dumps(_demo(0)).encode() + b"\n" + json.dumps(_demo(1)).encode()[:-2] + b"\xff\xfe\"}\n")
    with pytest.raises(DataError, match=r"d.jsonl:2: invalid UTF-8 at byte \d+"):
        load_demos(str(p), ByteTokenizer())


def test_demo_stream_state_roundtrip():
    a = DemoStream(5, 3, seed=1)
    first = [next(a) for _ in range(3)]
    assert sorted(first[0] + first[1][:2]) == list(range(5))  # epoch 0 is a permutation
    state = json.loads(json.dumps(a.get_state()))
    rest = [next(a) for _ in range(4)]
    b = DemoStream(5, 3, seed=1)
    b.set_state(state)
    assert [next(b) for _ in range(4)] == rest
    with pytest.raises(ValueError, match="seed"):
        DemoStream(5, 3, seed=2).set_state(state)


def _config_file(tmp_path, name):
    cfg = tmp_path / f"{name}.py"
    cfg.write_text(f"""
from egrpo_jax.config import default_config
def get_config():
    c = default_config()
    c.model.tokenizer = "byte"
    c.model.tiny.num_layers = 1
    c.model.tiny.hidden_size = 32
    c.model.tiny.intermediate_size = 64
    c.model.tiny.head_dim = 8
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 2, -1, 1
    c.data.demos = "{tmp_path}/demos.jsonl"
    c.data.batch_size = 2
    c.agent.prompt_style = "short"
    c.optim.lr = 3e-3
    c.train.steps = 12
    c.train.max_seq_len = 512
    c.checkpoint.dir = "{tmp_path}/{name}/ckpt"
    c.checkpoint.every = 2
    c.logging.dir = "{tmp_path}/{name}/logs"
    c.logging.progress = False
    return c
""")
    return str(cfg)


def _sft(cfg, *extra):
    env = dict(os.environ, EGRPO_CPU_DEVICES="2", PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "egrpo_jax.cli", "sft", "--config", cfg, *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _by_step(rows):
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)), steps  # a resumed run drops the steps it logs again
    return {r["step"]: r for r in rows}


def test_sft_kill9_and_resume_continues_with_the_same_batches(tmp_path):
    _write_demos(tmp_path / "demos.jsonl", 6)
    ref_cfg, run_cfg = _config_file(tmp_path, "ref"), _config_file(tmp_path, "run")
    ref = _sft(ref_cfg)
    run = _sft(run_cfg, "--resume")
    log = tmp_path / "run" / "logs" / "sft" / "metrics.jsonl"  # SFT keeps apart from a train run's logs
    deadline = time.time() + 240
    while time.time() < deadline and run.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    assert run.poll() is None, run.communicate()[0][-2000:]
    os.kill(run.pid, signal.SIGKILL)  # no chance to clean up, possibly mid-save
    run.wait()
    killed_at = max(r["step"] for r in read_metrics(str(tmp_path / "run" / "logs" / "sft")))
    assert killed_at < 12

    out = _sft(run_cfg)  # without --resume an existing run is refused
    assert out.wait() != 0 and "pass --resume" in out.communicate()[0]
    resumed = _sft(run_cfg, "--resume")
    assert resumed.wait() == 0, resumed.communicate()[0][-2000:]
    assert ref.wait() == 0, ref.communicate()[0][-2000:]

    r = _by_step(read_metrics(str(tmp_path / "ref" / "logs" / "sft")))
    g = _by_step(read_metrics(str(tmp_path / "run" / "logs" / "sft")))
    assert not (tmp_path / "run" / "logs" / "metrics.jsonl").exists()
    assert sorted(g) == sorted(r) == list(range(1, 13))
    for step in range(1, 13):
        assert g[step]["data/batch_hash"] == r[step]["data/batch_hash"], step
        assert g[step]["loss"] == pytest.approx(r[step]["loss"], rel=1e-6, abs=1e-7), step
    assert r[12]["loss"] < r[1]["loss"]  # SFT learns


def test_sft_logs_apart_from_a_train_run_with_the_same_logging_dir(tmp_path):
    from egrpo_jax.config import load_config
    from egrpo_jax.rl.sft import run_sft

    _write_demos(tmp_path / "demos.jsonl", 3)
    cfg = load_config(_config_file(tmp_path, "one"), ["train.steps=2", "checkpoint.dir=", "mesh.data=1"])
    run_sft(cfg)
    assert [r["step"] for r in read_metrics(str(tmp_path / "one" / "logs" / "sft"))] == [1, 2]
    assert not (tmp_path / "one" / "logs" / "metrics.jsonl").exists()  # what `egrpo train` writes


def test_cut_demos_are_reported_before_the_first_step(caplog):
    from egrpo_jax.config import default_config
    from egrpo_jax.rl.sft import report_demos

    cfg = default_config()
    cfg.train.max_seq_len = 256
    with caplog.at_level("WARNING", logger="egrpo_jax.rl.sft"):
        report_demos(cfg, {"kept": 148, "truncated": 0, "wrong_skipped": 0, "longest": 200})
        assert not caplog.records
        report_demos(cfg, {"kept": 148, "truncated": 101, "wrong_skipped": 0, "longest": 900})
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith("sft: 101 of 148 demos are longer than train.max_seq_len = 256 tokens")
