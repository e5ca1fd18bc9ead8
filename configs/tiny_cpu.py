"""Tiny CPU run: a 2-layer random Qwen2-shaped model on a byte tokenizer, synthetic data.

Data first: `egrpo gen-data --world synthetic --out data_out/syn --questions 200`.
Then `egrpo sft --config configs/tiny_cpu.py` and
`egrpo train --config configs/tiny_cpu.py --config.checkpoint.init_from=runs/tiny_sft/ckpt`.
"""

from egrpo_jax.config import default_config


def get_config():
    c = default_config()
    c.model.tokenizer = "byte"
    c.model.tiny.vocab_size = 257
    c.model.tiny.num_layers = 2
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.data.questions = "data_out/syn/train.jsonl"
    c.data.corpus = "data_out/syn/corpus.jsonl"
    c.data.demos = "data_out/syn/sft_demos.jsonl"
    c.data.batch_size = 4
    c.search.topk = 3  # must match the demos (datagen.synth.build.DEMO_TOOLS)
    c.search.snippet_chars = 200
    c.agent.prompt_style = "short"
    c.agent.max_tool_calls = 6
    c.agent.max_total_tokens = 2048
    c.agent.max_turn_tokens = 256
    c.rl.group_size = 4
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 2
    c.optim.logprob_chunk = 256
    c.train.steps = 20
    c.train.max_seq_len = 2048
    c.checkpoint.dir = "runs/tiny/ckpt"
    c.checkpoint.every = 5
    c.logging.dir = "runs/tiny/logs"
    return c
