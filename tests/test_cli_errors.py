"""Bad config, data, model files and output paths: one line `egrpo CMD: ...`, non-zero exit; --debug shows the traceback."""

import json
import os
import struct
import subprocess
import sys

import pytest

from egrpo_jax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BYTE = "--config.model.tokenizer=byte"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "bad_q.jsonl").write_text('{"id": "q1", "question": "Q?", "answer": "A", "entities": [{"name": "A"}]}\n'
                                   '{"id": "q2", "question": 5}\n')
    (d / "bad_corpus.jsonl").write_text('{"id": "d1", "title": "T", "text": "x"}\n{"id": "d2", "title": "T"}\n')
    (d / "bad_demos.jsonl").write_text('{"question": 7, "segments": []}\n')
    (d / "afile").write_text("x")
    hf = d / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 16, "hidden_size": 8,
                                                "intermediate_size": 16, "num_hidden_layers": 1,
                                                "num_attention_heads": 2}))
    head = json.dumps({"model.embed_tokens.weight": {"dtype": "F32", "shape": [16, 8], "data_offsets": [0, 512]}})
    head = head.encode() + b" " * (-len(head) % 8)
    (hf / "model.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + b"\0" * 100)  # truncated
    return d


CASES = [
    ("sft", ["--config", "{d}/missing.py"], r"--config {d}/missing.py: file not found"),
    ("sft", [BYTE, "--config.rl.alpha=2"], r"config key rl.alpha = 2.0: must be in [0, 1]"),
    ("sft", [BYTE, "--config.rl.alpah=0.2"], r"config key rl.alpah: unknown; did you mean rl.alpha?"),
    ("sft", [BYTE, "--config.data.demos={d}/missing.jsonl"], r"data.demos {d}/missing.jsonl: file not found"),
    ("sft", [BYTE, "--config.data.demos={d}/bad_demos.jsonl"], r"{d}/bad_demos.jsonl:1: field 'question' must be"),
    ("sft", [BYTE, "--config.data.demos={d}/bad_demos.jsonl", "--config.checkpoint.dir={d}/afile/ck"],
     r"{d}/afile/ck: checkpoint.dir: cannot create the folder (Not a directory)"),
    ("train", [BYTE, "--config.data.questions={d}/bad_q.jsonl", "--config.data.corpus={d}/bad_corpus.jsonl"],
     r"{d}/bad_q.jsonl:2: field 'question' must be a string, got int"),
    ("train", [BYTE, "--config.data.questions={d}/missing.jsonl"], r"{d}/missing.jsonl: file not found"),
    ("gen-data", ["--out", "{d}/afile/sub", "--questions", "10"], r"{d}/afile/sub: Not a directory"),
    ("index", ["--corpus", "{d}/bad_corpus.jsonl", "--out", "{d}/ix"], r"{d}/bad_corpus.jsonl:2: missing field 'text'"),
    ("index", ["--corpus", "{d}/missing.jsonl", "--out", "{d}/ix"], r"{d}/missing.jsonl: file not found"),
    ("convert", ["--model", "{d}/hf", "--out", "{d}/out"],
     r"{d}/hf/model.safetensors: tensor model.embed_tokens.weight ends at byte 616 but the file has 204 bytes"),
    ("demo", ["--config", "{d}/missing.py", "--out", "{d}/demo"], r"--config {d}/missing.py: file not found"),
    ("demo", ["--out", "{d}/demo", "--sft-steps", "0"], r"--sft-steps / --rl-steps must be >= 1, got 0"),
    ("train", [BYTE, "--config.rl.reward=egrpo_no_such_module:f"],
     r"config key rl.reward = 'egrpo_no_such_module:f': cannot import egrpo_no_such_module (ModuleNotFoundError: "),
]


@pytest.mark.parametrize("command,args,message", CASES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_bad_input_is_one_line_and_exit_2(files, capsys, command, args, message):
    rc = cli.main([command, *[a.format(d=files) for a in args]])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2
    assert len(err) == 1 and err[0].startswith(f"egrpo {command}: " + message.format(d=files)), err


def _run(args, **env):
    return subprocess.run([sys.executable, "-m", "egrpo_jax.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT, **env), timeout=300)


def test_debug_flag_and_env_show_the_traceback(files):
    args = ["sft", "--config", f"{files}/missing.py"]
    quiet = _run(args)
    assert quiet.returncode == 2 and quiet.stderr.strip().splitlines() == [
        f"egrpo sft: --config {files}/missing.py: file not found"]
    for p in (_run([*args, "--debug"]), _run(["--debug", *args]), _run(args, EGRPO_DEBUG="1")):
        assert p.returncode == 1 and "Traceback (most recent call last)" in p.stderr
        assert p.stderr.strip().splitlines()[-1].endswith(f"--config {files}/missing.py: file not found")


@pytest.mark.parametrize("command", ["sft", "train", "eval"])
def test_global_options_after_the_command_and_overrides_in_help(command, capsys):
    # the README says every command accepts --cpu-devices N; a config command documents its overrides
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--cpu-devices", "8", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--cpu-devices N" in out and "--config.KEY=VALUE" in out


def test_overrides_to_a_command_without_a_config_are_one_line(capsys):
    assert cli.main(["index", "--config.rl.alpha=0.3", "--corpus", "c.jsonl", "--out", "x"]) == 2
    assert capsys.readouterr().err.strip() == "egrpo index: --config.rl.alpha=0.3: `egrpo index` takes no config overrides"
