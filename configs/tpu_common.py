"""Shared settings of the TPU configs (imported by qwen2_5_7b_tpu.py and qwen3_8b_tpu.py).

The paper's recipe (PAPER.md): G = 8 rollouts for 64 questions per step, lr 2e-6, one on-policy
update per batch, ~80 steps, 32k context, 40 tool calls, temperature 1.0 for rollouts, no KL.

Mesh per slice: fsdp over the chips of a host group, tensor parallel 4 within a host where the
model's heads allow it (28 query / 4 KV heads for Qwen2.5-7B, 32 / 8 for Qwen3-8B), data the rest.
"""

from egrpo_jax.config import default_config

# slice -> (data, fsdp, tensor, micro-batches of the train step); `egrpo plan-memory` (docs/tpu.md)
# compiles each for its chip count and checks it against the chip's HBM
SLICES = {
    "v5p-16": (1, 2, 4, 8),    # 8 chips (v5p-N counts TensorCores: N/2 chips)
    "v5p-32": (1, 4, 4, 8),    # 16 chips (4 hosts)
    "v5p-64": (2, 4, 4, 4),    # 32 chips
    "v5p-128": (4, 4, 4, 2),   # 64 chips
    "v5litepod-16": (1, 4, 4, 16),  # 16 chips, 16 GiB HBM each: more fsdp, more micro-batches
    "v5litepod-64": (2, 8, 4, 8),
    "v4-32": (1, 4, 4, 8),     # 16 chips
    "v4-128": (2, 8, 4, 4),
}

# slice-name prefix -> (generation, HBM per chip in GiB, TensorCores per chip: v4 and v5p names count
# TensorCores, v5litepod and v6e names count chips). HBM as Cloud TPU's system-architecture pages give
# it; a program gets somewhat less (the runtime reserves some).
TPU_CHIPS = {
    "v4": ("v4", 32, 2),
    "v5litepod": ("v5e", 16, 1),
    "v5p": ("v5p", 95, 2),
    "v6e": ("v6e", 32, 1),
}


# the topology a slice is created with: `egrpo plan-memory --target tpu` compiles for it with libtpu, no TPU needed
TOPOLOGIES = {
    "v5p-16": "v5p:2x2x2", "v5p-32": "v5p:2x2x4", "v5p-64": "v5p:2x4x4", "v5p-128": "v5p:4x4x4",
    "v5litepod-16": "v5e:4x4", "v5litepod-64": "v5e:8x8",
    "v4-32": "v4:2x2x4", "v4-128": "v4:4x4x4",
}


def _chip(slice_name: str) -> tuple[str, int, int]:
    prefix, _, count = slice_name.rpartition("-")
    if prefix not in TPU_CHIPS or not count.isdigit():
        raise ValueError(f"TPU slice {slice_name!r}: expected PREFIX-N with PREFIX one of {sorted(TPU_CHIPS)}")
    return TPU_CHIPS[prefix]


def slice_chips(slice_name: str) -> int:
    """Chips (= JAX devices) of a slice: v5p-16 has 8, v5litepod-16 has 16."""
    return int(slice_name.rpartition("-")[2]) // _chip(slice_name)[2]


def slice_hbm_gib(slice_name: str) -> int:
    """HBM per chip of the slice's generation, GiB."""
    return _chip(slice_name)[1]


def tpu_config(model_path: str, slice_name: str):
    if slice_name not in SLICES:
        raise ValueError(f"unknown TPU slice {slice_name!r}; known: {sorted(SLICES)}")
    data, fsdp, tensor, micro = SLICES[slice_name]
    c = default_config()
    c.model.path = model_path
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"  # fp32 master weights; compute in bf16
    c.model.remat = True
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = data, fsdp, tensor
    c.data.questions = "data/train.jsonl"
    c.data.corpus = "data/corpus.jsonl"
    c.data.batch_size = 64
    c.search.backend = "bm25"
    c.search.index_dir = "data/index"
    c.search.topk = 10
    c.agent.prompt_style = "full"
    c.agent.max_tool_calls = 40
    c.agent.max_total_tokens = 32768
    c.agent.max_turn_tokens = 4096
    c.sampling.temperature = 1.0
    c.rl.group_size = 8
    c.rl.alpha = 0.3
    c.rl.eps_low, c.rl.eps_high = 0.2, 0.28
    c.optim.lr = 2e-6
    c.optim.warmup_steps = 0
    c.optim.clip_norm = 1.0
    c.optim.microbatches = micro
    c.optim.logprob_chunk = 1024  # bounds the [B, T, V] log-prob block (V ~ 152k)
    c.train.steps = 80
    c.train.max_seq_len = 32768
    c.checkpoint.dir = "gs://YOUR_BUCKET/egrpo/ckpt"
    c.checkpoint.every = 10
    c.checkpoint.keep = 3
    c.logging.dir = "runs/egrpo/logs"
    return c
