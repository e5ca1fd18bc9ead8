"""The demo pipeline and replicate's aggregation on a micro setting (tiny world, a few steps)."""

import json
import os

import numpy as np
import pytest

from egrpo_jax.config import default_config
from egrpo_jax.datagen.synth.oracle import DemoConfig
from egrpo_jax.datagen.synth.world import WorldConfig
from egrpo_jax.e2e.settings import PipelineConfig, PipelineSettings
from egrpo_jax.tools.registry import ToolConfig

TOOLS = ToolConfig(topk=1, snippet_chars=200)


def _run_cfg(steps: int, batch: int):
    c = default_config()
    c.model.tiny.update(family="llama", hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
                        num_kv_heads=2, head_dim=16, tie_embeddings=True, max_position_embeddings=256)
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.search.topk, c.search.snippet_chars = TOOLS.topk, TOOLS.snippet_chars
    c.agent.update(prompt_style="short", max_tool_calls=2, max_total_tokens=256, max_turn_tokens=16)
    c.train.update(steps=steps, max_seq_len=256)
    c.data.batch_size = batch
    c.rl.group_size = 2
    c.optim.update(lr=1e-3, warmup_steps=0)
    c.logging.progress = False
    return c


def micro_config() -> PipelineConfig:
    settings = PipelineSettings(
        world=WorldConfig(seed=3, n_people=8, n_orgs=4, n_cities=4, n_countries=2, n_works=4, n_questions=40,
                          min_hops=2, max_hops=2, fuzz_rate=0.0, distractor_rate=0.0, test_fraction=0.2),
        demos=DemoConfig(recovered_rate=0.0, wrong_rate=0.0, seed=3), tools=TOOLS, vocab_size=320,
        eval_questions=4, eval_k=1, eval_batch=4)
    return PipelineConfig(rl=_run_cfg(1, 2), sft=_run_cfg(2, 8), pipeline=settings, source="micro")


def test_build_data_is_consistent(tmp_path):
    from egrpo_jax.data.io import load_questions, read_jsonl
    from egrpo_jax.e2e.pipeline import build_pipeline_data
    from egrpo_jax.models.tokenizer import Tokenizer

    s = micro_config().pipeline
    d = build_pipeline_data(s, str(tmp_path / "data"))
    train, test = load_questions(d.train), load_questions(d.test)
    demos = read_jsonl(d.demos)
    assert len(demos) == len(train) == d.stats["questions/train"] > 0 and len(test) > 0
    assert {x["question_id"] for x in demos} == {q.id for q in train}
    assert not {q.metadata["chain"][0] for q in train} & {q.metadata["chain"][0] for q in test}
    tok = Tokenizer.from_pretrained(d.tokenizer)
    from egrpo_jax.agent.template import render_prompt, system_prompt

    # the fixed system prompt is one token; tags are single ids; round trip is exact
    assert len(tok.encode(system_prompt("short"))) == 1
    assert len(tok.encode("</tool_call>")) == 1
    text = render_prompt(tok, test[0].question, style="short")
    assert tok.decode(tok.encode(text)) == text
    assert os.path.isdir(d.index)


def test_rl_split_is_what_rl_samples_and_the_demos_never_hold(tmp_path):
    """With WorldConfig.rl_fraction the RL run's questions are the rl split (no demo for any of
    them) and the SFT's are train; a resumed replicate reads the same paths back from data.json."""
    import dataclasses

    from egrpo_jax.data.io import load_questions, read_jsonl
    from egrpo_jax.datagen.synth.build import existing_data
    from egrpo_jax.e2e.pipeline import build_pipeline_data, run_configs, tokenizer_vocab

    pc = micro_config()
    pc = dataclasses.replace(pc, pipeline=dataclasses.replace(
        pc.pipeline, world=dataclasses.replace(pc.pipeline.world, rl_fraction=0.25)))
    d = build_pipeline_data(pc.pipeline, str(tmp_path / "data"))
    rl, train = load_questions(d.rl), load_questions(d.train)
    assert rl and d.stats["questions/rl"] == len(rl)
    assert not {x["question_id"] for x in read_jsonl(d.demos)} & {q.id for q in rl}
    sft_cfg, rl_cfg = run_configs(pc, d, str(tmp_path), tokenizer_vocab=tokenizer_vocab(d))
    assert (sft_cfg.data.questions, rl_cfg.data.questions) == (d.train, d.rl) and len(train) > 0
    assert existing_data(d.root).rl_questions == d.rl
    plain = build_pipeline_data(micro_config().pipeline, str(tmp_path / "plain"))
    assert plain.rl == "" and plain.rl_questions == plain.train


def test_demo_pipeline_end_to_end(tmp_path):
    from egrpo_jax.e2e.pipeline import run_pipeline

    out = tmp_path / "demo"
    logs = []
    res = run_pipeline(micro_config(), str(out), progress=False, log=logs.append)
    # every phase ran and was timed
    assert [k.split(":")[0] for k in res["timings_s"]] == [
        "data", "sft", "load policy + tools", "eval before RL (SFT policy)", "rl", "eval after RL"]
    for name in ("eval_sft", "eval_rl"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["questions"] == 4 and summary["rollouts"] == 4
        assert 0.0 <= summary["pass@1"] <= 1.0
    assert (out / "eval_rl" / "plots" / "training_curves.png").stat().st_size > 0
    rows = [json.loads(x) for x in (out / "rl" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]
    report = (out / "report.md").read_text()
    assert "| Pass@1 |" in report and "| tool calls / rollout |" in report
    assert res["table"] in report
    saved = json.loads((out / "result.json").read_text())
    for side in ("before", "after"):
        for key in ("pass@1", "pass@3", "questions", "format_error_rate"):
            assert key in saved[side], (side, key)
        assert saved[side]["questions"] == 4
    assert saved["train_reward"]["first"] == rows[0]["reward/mean"] == saved["train_reward"]["last"]
    # the RL - SFT difference is paired over the same questions, with its bootstrap interval
    gain = saved["rl_minus_sft"]["pass@1"]
    assert gain["mean"] == pytest.approx(saved["after"]["pass@1"] - saved["before"]["pass@1"])
    assert gain["lo"] <= gain["mean"] <= gain["hi"] and gain["questions"] == 4
    assert "minus SFT, paired over the same 4 questions (95% bootstrap CI): Pass@1 " in report
    assert f"| training reward (first / last RL step) | {rows[0]['reward/mean']:.3f} |" in res["table"]
    # a second run into the same folder is refused (never mixes two runs)
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_pipeline(micro_config(), str(out), progress=False, log=logs.append)
    # `demo --model` takes a training checkpoint folder: its policy.json and tokenizer/ replace the BPE
    again = tmp_path / "from_ckpt"
    run_pipeline(micro_config(), str(again), model_path=str(out / "sft" / "ckpt"), progress=False, log=logs.append)
    assert not (again / "data" / "tokenizer").exists()
    assert json.loads((again / "eval_rl" / "summary.json").read_text())["questions"] == 4


def test_replicate_resumes_a_grid_from_its_tracked_records(tmp_path):
    """A grid's records kept with --docs let a later call in a fresh run folder (another session)
    skip the recorded runs, once its SFT start reproduces bit for bit; other settings are refused, and so are
    other data (before the SFT) and an SFT step whose loss is not the recorded one (at that step)."""
    import dataclasses

    from egrpo_jax.e2e.replicate import GRPO, RECORD_KEYS, run_replicate

    pc = micro_config()
    pc = dataclasses.replace(pc, pipeline=dataclasses.replace(
        pc.pipeline, world=dataclasses.replace(pc.pipeline.world, rl_fraction=0.25)))
    store = tmp_path / "docs"
    first = run_replicate(pc, str(tmp_path / "a"), arms=(GRPO,), seeds=(0,), store_dir=str(store), progress=False,
                          log=lambda _: None)
    sft, run = first["records"]
    assert sft["rl_per_question"] and len(sft["rl_per_question"]) == first["data"]["questions/rl"]
    assert len(run["train_excess"]) == 1 and (store / "runs" / "alpha0_seed0.json").is_file()
    assert "accuracy" in run["training"][0] and set(run["training"][0]) <= set(RECORD_KEYS)  # trimmed for git
    logs = []
    again = run_replicate(pc, str(tmp_path / "b"), arms=(GRPO,), seeds=(0,), store_dir=str(store), progress=False,
                          log=logs.append)
    assert not (tmp_path / "b" / "runs").exists()  # the recorded run was not trained again
    assert not any("alpha0_seed0" in line for line in logs)
    assert json.loads(json.dumps(again["records"], default=float)) == json.loads(json.dumps(first["records"],
                                                                                             default=float))
    pc.rl.optim.lr *= 2
    with pytest.raises(ValueError, match=r"start.json: recorded from another start \(settings differ"):
        run_replicate(pc, str(tmp_path / "b"), arms=(GRPO,), seeds=(0,), store_dir=str(store), progress=False,
                      log=lambda _: None)
    # the start's first SFT losses are recorded (folder b trained its start again under the check and passed);
    # a machine whose step differs in the last bit is stopped at that step, before the start is saved
    from egrpo_jax.e2e.replicate import saved_step

    head = json.loads((store / "start.json").read_text())
    logged = [json.loads(x) for x in (tmp_path / "a" / "sft" / "logs" / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert head["sft_losses"] == [[r["step"], r["loss"]] for r in logged][:10] and head["sft_losses"]
    head["sft_losses"][-1][1] = np.nextafter(head["sft_losses"][-1][1], np.inf)
    (store / "start.json").write_text(json.dumps(head))
    pc.rl.optim.lr /= 2
    step = head["sft_losses"][-1][0]
    with pytest.raises(ValueError, match=rf"start.json: SFT step {step} loss .+, recorded .+ this machine does not "
                                         "reproduce the SFT start"):
        run_replicate(pc, str(tmp_path / "c"), arms=(GRPO,), seeds=(0,), store_dir=str(store), progress=False,
                      log=lambda _: None)
    assert saved_step(str(tmp_path / "c" / "sft" / "ckpt")) is None
    # the data the start was trained from are recorded; other data are refused before any SFT step
    from egrpo_jax.e2e.grid_store import data_sha256

    assert head["data_sha256"] == data_sha256(tmp_path / "a" / "data") == data_sha256(tmp_path / "c" / "data")
    head["data_sha256"] = "0" * 64
    (store / "start.json").write_text(json.dumps(head))
    with pytest.raises(ValueError, match=r"start.json: recorded from other data \(data_sha256 0000000000000000, "):
        run_replicate(pc, str(tmp_path / "d"), arms=(GRPO,), seeds=(0,), store_dir=str(store), progress=False,
                      log=lambda _: None)
    assert (tmp_path / "d" / "data").is_dir() and not (tmp_path / "d" / "sft").exists()


def test_a_stopped_replicate_sft_is_continued_to_the_same_params(tmp_path):
    """replicate's SFT start, stopped after step 2 of 4 (its folder holds steps <= 2, as after a kill), is
    continued from step 2 and ends bit for bit where an uninterrupted one ends; a finished one is reused,
    one of more steps than asked is refused. (Before: any existing folder counted as finished.)"""
    import shutil

    from egrpo_jax.e2e.grid_store import params_sha256
    from egrpo_jax.e2e.pipeline import Timer, build_pipeline_data, load_policy, run_configs, tokenizer_vocab
    from egrpo_jax.e2e.replicate import saved_step, sft_start

    pc = micro_config()
    pc.sft.train.steps = 4
    data = build_pipeline_data(pc.pipeline, str(tmp_path / "data"))
    logs, params = [], {}
    for run in ("whole", "stopped"):
        sft_cfg, rl_cfg = run_configs(pc, data, str(tmp_path / run), tokenizer_vocab=tokenizer_vocab(data))
        sft_cfg.checkpoint.every = 1  # saves after every step (keep 3: steps 2, 3, 4 stay)
        sft_start(sft_cfg, Timer(logs.append), logs.append)
        if run == "stopped":
            for step in (3, 4):
                shutil.rmtree(os.path.join(sft_cfg.checkpoint.dir, str(step)))
            assert saved_step(sft_cfg.checkpoint.dir) == 2
            logs.clear()
            sft_start(sft_cfg, Timer(logs.append), logs.append)
            assert any("continuing the stopped SFT" in line and "from step 2 of 4" in line for line in logs), logs
        assert saved_step(sft_cfg.checkpoint.dir) == 4
        params[run] = params_sha256(load_policy(rl_cfg)[1])
    assert params["stopped"] == params["whole"]
    logs.clear()
    sft_start(sft_cfg, Timer(logs.append), logs.append)
    assert logs == [f"   reusing the SFT checkpoint in {sft_cfg.checkpoint.dir}"]
    sft_cfg.train.steps = 3
    with pytest.raises(ValueError, match=r"ckpt: holds SFT step 4, this call trains 3 steps"):
        sft_start(sft_cfg, Timer(logs.append), logs.append)
