"""Run the learning task: SFT cold start on format-only demos, then GRPO / E-GRPO; returns metrics rows."""

from __future__ import annotations

import numpy as np

from egrpo_jax.assembly import sampling_params
from egrpo_jax.config import load_config
from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.metrics_log import read_metrics
from egrpo_jax.models.config import ModelConfig
from egrpo_jax.models.sharding import create_model
from egrpo_jax.rl.batch import pack_sequences
from egrpo_jax.rl.learner import Learner, LossSettings, OptimSettings
from egrpo_jax.rl.loop import run_train
from egrpo_jax.rl.sft import tokenize_demo
from egrpo_jax.sampling.engine import Engine
from egrpo_jax.tools.bm25 import Bm25Index
from egrpo_jax.tools.registry import ToolConfig, ToolSet

from learning_task import PhraseTokenizer, corpus, format_demos, questions

K = 8


def run_learning(tmp, *, seed: int = 0, alpha: float = 0.0, rl_steps: int = 20, sft_steps: int = 40,
                 overrides: tuple[str, ...] = (), batch: int = 3 * K,
                 hint: float = 0.15) -> tuple[list[dict], dict]:
    """SFT (format only, `hint` of the demos search the right country) then `rl_steps` of GRPO over
    `batch` questions x G=8 per step; returns the RL metrics rows and the SFT losses."""
    tok = PhraseTokenizer(K)
    mesh = single_device_mesh()
    cfg_m = ModelConfig(family="llama", vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128,
                        num_layers=1, num_heads=2, num_kv_heads=2, head_dim=32, tie_embeddings=False,
                        max_position_embeddings=128)
    model = create_model(cfg_m, mesh=mesh, seed=seed)
    tools = ToolSet(Bm25Index.build(corpus(K)), ToolConfig(topk=1, snippet_chars=60))
    try:
        demos = format_demos(K, tools, 256, seed, hint)
        seqs = [tokenize_demo(d, tok, prompt_style="short") for d in demos]
        sft = Learner(model, mesh, OptimSettings(lr=3e-3, warmup_steps=5), LossSettings(kind="sft"))
        rng = np.random.default_rng(seed)
        sft_loss = []
        for _ in range(sft_steps):
            idx = rng.choice(len(seqs), 32, replace=False)
            m = sft.train_step(pack_sequences([seqs[i][0] for i in idx], [seqs[i][1] for i in idx]))
            sft_loss.append(m["loss"])
        cfg = load_config(None, [
            f"data.batch_size={batch}", "rl.group_size=8", f"rl.alpha={alpha}", "agent.prompt_style=short",
            "agent.max_total_tokens=128", "agent.max_tool_calls=2", f"train.steps={rl_steps}",
            "optim.lr=1e-3", "sampling.temperature=1.0",
            f"train.seed={seed}", f"data.seed={seed}", f"logging.dir={tmp}/logs", "logging.progress=false",
            *overrides,
        ])
        stops = [[tok.action_id(a)] for a in tok.actions]
        engine = Engine(model, num_rows=cfg.data.batch_size * cfg.rl.group_size, max_len=128,
                        sampling=sampling_params(cfg), stop_sequences=stops, eos_ids=tok.eos_ids, mesh=mesh)
        run_train(cfg, model=model, tokenizer=tok, tools=tools, records=questions(K), mesh=mesh, engine=engine)
    finally:
        tools.close()
    return read_metrics(f"{tmp}/logs"), {"sft_loss": sft_loss}
