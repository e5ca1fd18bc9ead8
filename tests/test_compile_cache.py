"""The persistent compilation cache of CLI runs: a second run of the same shapes compiles nothing, and
every run logs the seconds it spent compiling."""

import os
import subprocess
import sys

import pytest

from egrpo_jax.cli import _take_global_options
from egrpo_jax.metrics_log import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "rl"))
from test_sft import _config_file, _write_demos  # noqa: E402


def _sft(cfg: str, *extra: str) -> None:
    env = dict(os.environ, EGRPO_CPU_DEVICES="2", PYTHONPATH=ROOT)
    env.pop("EGRPO_COMPILE_CACHE")  # conftest turns it off for the suite; these runs choose it by flag
    cmd = [sys.executable, "-m", "egrpo_jax.cli", "sft", "--config", cfg, "--config.train.steps=2", *extra]
    out = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert out.returncode == 0, out.stdout[-2000:]


def test_a_second_run_loads_every_program_from_the_cache(tmp_path):
    _write_demos(tmp_path / "demos.jsonl", 6)
    cache = tmp_path / "xla"
    runs = {}
    for name in ("first", "second"):
        _sft(_config_file(tmp_path, name), "--compile-cache", str(cache))
        runs[name] = read_metrics(str(tmp_path / name / "logs" / "sft"))
    first, second = runs["first"], runs["second"]
    assert [r["step"] for r in first] == [r["step"] for r in second] == [1, 2]
    assert first[0]["compile/cache_misses"] > 0 and first[0]["time/compile_s"] > 0
    assert all(r["compile/cache_misses"] == 0 for r in second), second
    assert len(os.listdir(cache)) > 0
    # the cached executables compute what the compiled ones did
    assert [r["loss"] for r in second] == [r["loss"] for r in first]


def test_off_keeps_no_cache(tmp_path, monkeypatch):
    _write_demos(tmp_path / "demos.jsonl", 6)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    _sft(_config_file(tmp_path, "off"), "--compile-cache=off")
    assert not (tmp_path / "home-cache").exists()
    rows = read_metrics(str(tmp_path / "off" / "logs" / "sft"))
    assert rows[0]["compile/cache_misses"] == 0 and rows[0]["time/compile_s"] > 0  # compiled, nothing cached


def test_global_option_anywhere_on_the_line():
    assert _take_global_options(["sft", "--compile-cache", "/x", "--config", "c.py"]) == \
        (["sft", "--config", "c.py"], None, False, "/x")
    assert _take_global_options(["--compile-cache=off", "eval"])[3] == "off"
    with pytest.raises(ValueError, match="--compile-cache needs a folder or `off`"):
        _take_global_options(["sft", "--compile-cache"])
