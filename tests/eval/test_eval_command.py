"""`egrpo eval` end to end on files (scripted engine), and evaluate() on the real jitted Engine."""

import argparse
import json

import pytest
from eval_fixtures import PNG_SIGNATURE
from test_eval_runner import SCRIPTS, CharTokenizer, Corpus, ScriptedEngine, _records

from egrpo_jax import cli
from egrpo_jax.data.io import write_corpus, write_questions
from egrpo_jax.data.schema import Document


@pytest.fixture
def files(tmp_path):
    write_questions(tmp_path / "q.jsonl", _records())
    write_corpus(
        tmp_path / "corpus.jsonl",
        [
            Document("d1", "Aldora", "Aldora lies in Calloway."),
            Document("d2", "Dunmore", "Dunmore was founded by Ela."),
        ],
    )
    (tmp_path / "model").mkdir()
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 0, "reward/mean": 0.2}) + "\n")
    return tmp_path


def _argv(d, *extra):
    return [
        "eval",
        "--model",
        str(d / "model"),
        "--questions",
        str(d / "q.jsonl"),
        "--index",
        str(d / "corpus.jsonl"),
        "--out",
        str(d / "out"),
        *extra,
    ]


def test_eval_command_writes_report(files, monkeypatch, capsys):
    from egrpo_jax.commands import eval as eval_cmd
    from egrpo_jax.eval import runner

    monkeypatch.setattr(eval_cmd, "load_policy", lambda cfg: (None, CharTokenizer()))
    monkeypatch.setattr(
        runner,
        "default_engine_factory",
        lambda model, tok, sampling, max_len: lambda rows: ScriptedEngine(rows, SCRIPTS),
    )
    rc = cli.main(
        _argv(
            files,
            "--k",
            "3",
            "--batch-size",
            "2",
            "--max-turn-tokens",
            "200",
            "--prompt-style",
            "short",
            "--training-metrics",
            str(files / "metrics.jsonl"),
            "--title",
            "scripted",
        )
    )
    assert rc == 0
    out = files / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass@1"] == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3) and summary["pass@3"] == 1.0
    assert summary["meta"]["k"] == 3 and summary["meta"]["temperature"] == 0.6
    trajs = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    # in the order questions finish (a question waits for its slowest rollout), each row names its rollout
    order = [t["question_id"] for t in trajs]
    assert sorted((t["question_id"], t["sample"]) for t in trajs) == [(f"q{i}", g) for i in (1, 2, 3) for g in range(3)]
    assert all(len(set(order[i:i + 3])) == 1 for i in (0, 3, 6))
    q1 = next(t for t in trajs if (t["question_id"], t["sample"]) == ("q1", 0))
    assert q1["tool_calls"][0]["name"] == "search"
    assert q1["answer"] == "Brenvik" and "Calloway" in q1["thoughts"][1]
    assert len((out / "rollouts.jsonl").read_text().splitlines()) == 9
    for png in ("match_rate.png", "accuracy_by_matched.png", "training_curves.png"):
        assert (out / "plots" / png).read_bytes().startswith(PNG_SIGNATURE)
    assert (out / "report.md").read_text().startswith("# scripted\n")
    printed = capsys.readouterr().out
    assert "3 questions x 3: pass@1 55.6%  pass@3 100.0%" in printed and "report: " in printed


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--temperature", "0", "--k", "3"], "config key eval.k = 3: must be 1 when eval.temperature = 0"),
        (["--k", "0"], "config key eval.k = 0: must be an integer >= 1"),
        (["--top-p", "0"], "config key eval.top_p = 0.0: must be a number > 0.0 and <= 1.0"),
        (["--max-total-tokens", "1"], "config key agent.max_total_tokens = 1: must be an integer >= 2"),
        (["--config.eval.k=0"], "config key eval.k = 0: must be an integer >= 1"),
        (["--config.eval.nope=1"], "config key eval.nope: unknown"),
    ],
)
def test_eval_command_bad_arguments(files, extra, message, monkeypatch, capsys):
    from egrpo_jax.commands import eval as eval_cmd

    monkeypatch.setattr(eval_cmd, "load_policy", lambda cfg: (None, CharTokenizer()))
    assert cli.main(_argv(files, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("egrpo eval: " + message), err


def test_eval_flags_are_config_keys(files):
    from egrpo_jax.commands import eval as eval_cmd
    from egrpo_jax.commands.common import run_config
    from egrpo_jax.config import default_config

    parser = argparse.ArgumentParser()
    eval_cmd.configure(parser)
    args = parser.parse_args(["--out", "o", "--k", "2", "--max-total-tokens", "512", "--index", str(files / "corpus.jsonl"),
                              "--strict-entities"])
    args.config_overrides = ["eval.k=1"]  # --config.KEY=VALUE comes after the flags
    cfg = run_config(args, eval_cmd.flag_overrides(args))
    assert cfg.eval.k == 1 and cfg.agent.max_total_tokens == 512 and cfg.eval.strict_match
    assert cfg.search.backend == "bm25" and cfg.search.index_dir == str(files / "corpus.jsonl")
    # a flag left out keeps the config's default: one set of defaults
    assert cfg.eval.top_p == default_config().eval.top_p and cfg.agent.max_tool_calls == default_config().agent.max_tool_calls
    assert set(eval_cmd.FLAG_KEYS.values()) <= set(cfg_keys(cfg))


def cfg_keys(cfg):
    from egrpo_jax.config import flatten

    return flatten(cfg)


def test_eval_command_missing_files(files, capsys):
    rc = cli.main(["eval", "--model", str(files / "model"), "--questions", str(files / "nope.jsonl"),
                   "--index", str(files / "corpus.jsonl"), "--out", str(files / "o")])
    assert rc == 2 and "eval.questions " + str(files / "nope.jsonl") + ": file not found" in capsys.readouterr().err
    assert cli.main(_argv(files)) == 2  # an empty folder is no policy
    assert "expected an HF folder (config.json" in capsys.readouterr().err


def test_evaluate_on_real_engine_greedy_is_deterministic():
    """Tiny random model through the jitted Engine: every row ends, greedy samples are identical."""
    from egrpo_jax.agent.config import AgentConfig
    from egrpo_jax.eval.runner import evaluate
    from egrpo_jax.models import create_model, tiny_config
    from egrpo_jax.sampling.api import SamplingParams
    from egrpo_jax.tools.registry import ToolSet

    model = create_model(tiny_config(vocab_size=256), seed=0)
    seen = []
    with ToolSet(Corpus()) as tools:
        scores, summary = evaluate(
            model,
            CharTokenizer(),
            _records()[:2],
            tools,
            k=2,
            batch_size=2,
            sampling=SamplingParams(0.0),
            agent_cfg=AgentConfig(max_total_tokens=512, max_turn_tokens=16, prompt_style="short"),
            on_question=lambda i, trajs, sc: seen.append((i, trajs)),
        )
    assert len(scores) == 4 and summary["rollouts"] == 4
    seen = [t for _, trajs in sorted(seen, key=lambda x: x[0]) for t in trajs]
    assert all(t.status in ("answered", "format_error", "overlength") for t in seen)
    assert all(0 < t.num_model_tokens <= 16 * max(t.num_turns, 1) for t in seen)
    for a, b in ((seen[0], seen[1]), (seen[2], seen[3])):
        assert a.tokens == b.tokens and a.status == b.status
