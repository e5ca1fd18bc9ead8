"""`egrpo gen-data --world real`: questions, corpus, BM25 index and the oracle's SFT demos."""

import os

from egrpo_jax.data.io import load_questions, read_jsonl
from egrpo_jax.tools.bm25 import Bm25Index

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def test_gen_data_real_writes_demos_and_an_index(tmp_path, capsys):
    from egrpo_jax.cli import main

    out = tmp_path / "real"
    assert main(["gen-data", "--world", "real", "--out", str(out), "--config", os.path.join(CONFIGS, "real_cpu.py"),
                 "--questions", "120", "--wiki-docs", "100", "--snippet-chars", "300"]) == 0
    text = capsys.readouterr().out
    assert "sft demos: " in text and "topk=1 snippet_chars=300" in text and "wrote demos:" in text
    train = load_questions(out / "train.jsonl")
    demos = read_jsonl(out / "sft_demos.jsonl")
    assert [d["question_id"] for d in demos] == [q.id for q in train] and train
    kept = sum(len(load_questions(out / f"{s}.jsonl")) for s in ("train", "dev", "test"))
    assert 0 < kept < 120  # 300-character snippets hide some facts: those questions are dropped
    assert any(d["kind"] == "early_stop" for d in demos)  # the config's early_stop_rate is kept
    assert Bm25Index.load(str(out / "index")).search(["capital"], 1)[0]


def test_gen_data_config_must_match_the_world(tmp_path, capsys):
    from egrpo_jax.cli import main

    assert main(["gen-data", "--world", "real", "--out", str(tmp_path / "a"), "--config",
                 os.path.join(CONFIGS, "demo_cpu.py")]) != 0
    assert "no real-world set" in capsys.readouterr().err
    assert main(["gen-data", "--world", "synthetic", "--out", str(tmp_path / "b"), "--config",
                 os.path.join(CONFIGS, "real_cpu.py")]) != 0
    assert "use --world real" in capsys.readouterr().err
