"""The real-world pipeline (configs/real_cpu.py): its config, and a tiny end-to-end run with a real tokenizer."""

import dataclasses
import json
import os

import pytest

from egrpo_jax.datagen.real.build import RealConfig
from egrpo_jax.e2e.settings import PipelineConfig, load_pipeline_config

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "real_cpu.py")


@pytest.fixture(scope="module")
def real_cfg():
    return load_pipeline_config(CONFIG)


def test_real_config_loads_and_its_runs_match_the_demo_tools(real_cfg, smollm2_tokenizer, tmp_path):
    from egrpo_jax.data.io import read_jsonl
    from egrpo_jax.e2e.pipeline import build_pipeline_data, run_configs
    from egrpo_jax.rl.sft import tokenize_demo

    s = real_cfg.pipeline
    assert s.real is not None and s.model.endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and os.path.isfile(s.model)
    assert s.demos.recovered_rate == s.demos.wrong_rate == 0.0
    small = dataclasses.replace(s, real=dataclasses.replace(s.real, n_questions=150, wiki_docs=200))
    data = build_pipeline_data(small, str(tmp_path / "data"), tokenizer=False)
    sft, rl = run_configs(dataclasses.replace(real_cfg, pipeline=small), data, str(tmp_path), model_path=s.model)
    assert (sft.search.topk, sft.search.snippet_chars) == (rl.search.topk, rl.search.snippet_chars) == (
        s.tools.topk, s.tools.snippet_chars)
    assert sft.model.path == rl.model.path == s.model and rl.checkpoint.init_from.endswith(os.path.join("sft", "ckpt"))
    assert not sft.data.correct_demos_only  # the early-stop demos are part of the cold start
    # no demo is cut by train.max_seq_len (a cut demo loses its answer), and a rollout of the same
    # length fits the agent's token budget
    longest = max(len(tokenize_demo(d, smollm2_tokenizer, prompt_style=sft.agent.prompt_style)[0])
                  for d in read_jsonl(data.demos))
    assert longest <= sft.train.max_seq_len and longest <= rl.agent.max_total_tokens
    # the RL rows split evenly into micro-batches
    assert (rl.data.batch_size * rl.rl.group_size) % rl.optim.microbatches == 0


def test_real_pipeline_needs_a_pretrained_policy(real_cfg, tmp_path):
    from egrpo_jax.e2e.pipeline import build_pipeline_data, run_pipeline

    no_model = dataclasses.replace(real_cfg, pipeline=dataclasses.replace(real_cfg.pipeline, model=""))
    with pytest.raises(ValueError, match="pretrained policy: pass --model"):
        run_pipeline(no_model, str(tmp_path / "run"), progress=False, log=lambda _: None)
    with pytest.raises(ValueError, match="brings its tokenizer"):
        build_pipeline_data(real_cfg.pipeline, str(tmp_path / "data"))  # a BPE is asked for
    with pytest.raises(ValueError, match="recovered_rate and wrong_rate to 0"):
        dataclasses.replace(real_cfg.pipeline, demos=dataclasses.replace(real_cfg.pipeline.demos, wrong_rate=0.1))


def _tiny(cfg, steps: int, batch: int):
    cfg = cfg.copy_and_resolve_references() if hasattr(cfg, "copy_and_resolve_references") else cfg
    cfg.train.steps = steps
    cfg.data.batch_size = batch
    cfg.optim.update(microbatches=1, warmup_steps=0)
    cfg.agent.max_turn_tokens = 16
    cfg.logging.progress = False
    return cfg


def test_tiny_real_pipeline_end_to_end(real_cfg, smollm2_tokenizer, tmp_path):
    """configs/real_cpu.py shrunk (60 questions, 1 SFT step, 1 RL step of 1 question x 2) with a tiny random Llama that
    carries the real SmolLM2 tokenizer and chat template, loaded through --model like the real run."""
    from egrpo_jax.e2e.pipeline import run_pipeline
    from egrpo_jax.models.config import ModelConfig
    from egrpo_jax.models.loading import save_pretrained
    from egrpo_jax.models.sharding import create_model

    model_dir = str(tmp_path / "tiny-smol")
    tiny = ModelConfig(family="llama", vocab_size=smollm2_tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                       num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, tie_embeddings=True,
                       max_position_embeddings=2048)
    save_pretrained(create_model(tiny, seed=0), smollm2_tokenizer, model_dir)
    s = dataclasses.replace(real_cfg.pipeline, real=RealConfig(seed=0, n_questions=60, wiki_docs=100),
                            model=model_dir, eval_questions=2, eval_k=1, eval_batch=2)
    pc = PipelineConfig(rl=_tiny(real_cfg.rl, 1, 1), sft=_tiny(real_cfg.sft, 1, 2), pipeline=s, source="tiny-real")
    pc.rl.rl.group_size = 2
    out = tmp_path / "run"
    logs: list[str] = []
    res = run_pipeline(pc, str(out), progress=False, log=logs.append)
    assert logs[0].startswith("== data: real-world questions")
    result = json.loads((out / "result.json").read_text())
    assert result["data"]["world"] == "real" and result["data"]["demos"] == result["data"]["questions/train"] > 0
    assert result["sft"]["demos/kept"] == result["data"]["demos"] and result["sft"]["demos/truncated"] == 0
    for name in ("eval_sft", "eval_rl"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["questions"] == 2 and summary["rollouts"] == 2
    rows = [json.loads(x) for x in (out / "rl" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]
    assert "pass@1" in res["rl_minus_sft"] and res["params"] < 2_000_000, res["timings_s"]
    assert (out / "report.md").read_text().count("| Pass@1 |") == 1
