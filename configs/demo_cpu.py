"""`egrpo demo` (make demo): the whole stack on a 2-core CPU in minutes.

A pipeline config: get_config() is the RL run (egrpo_jax.config schema), get_sft_config() the
SFT cold start, get_pipeline() the synthetic world, tokenizer and evaluation. Paths (data,
tokenizer, index, checkpoints, logs) are filled in by the pipeline under the run folder.

Sized for learnability: 2-hop questions about named entities (no fuzzed descriptions, no
near-name distractors), one search hit per query, a BPE (<= 2048 tokens) in which the fixed
system prompt is one token, so a whole rollout fits in 256 tokens.
"""

from egrpo_jax.config import default_config
from egrpo_jax.data.synth.oracle import DemoConfig
from egrpo_jax.data.synth.world import WorldConfig
from egrpo_jax.e2e.settings import PipelineSettings
from egrpo_jax.tools.registry import ToolConfig

TOOLS = ToolConfig(topk=1, snippet_chars=200)


def _common():
    c = default_config()
    c.model.tiny.update(family="llama", hidden_size=128, intermediate_size=384, num_layers=4, num_heads=4,
                        num_kv_heads=4, head_dim=32, tie_embeddings=True, max_position_embeddings=256)
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, -1, 1
    c.search.topk, c.search.snippet_chars = TOOLS.topk, TOOLS.snippet_chars
    c.agent.prompt_style = "short"
    c.agent.max_tool_calls = 4
    c.agent.max_total_tokens = 256  # a rollout is ~230 tokens; keeps every batch in the 256 bucket
    c.agent.max_turn_tokens = 64
    c.train.max_seq_len = 256
    c.optim.logprob_chunk = 0
    return c


def get_sft_config():
    c = _common()
    c.data.batch_size = 16
    c.train.steps = 300
    c.optim.lr = 3e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 10
    c.optim.min_lr_ratio = 0.1
    c.optim.weight_decay = 0.01
    return c


def get_config():
    c = _common()
    c.data.batch_size = 8  # questions per step
    c.rl.group_size = 4
    c.rl.alpha = 0.3
    c.sampling.temperature = 1.0
    c.optim.lr = 5e-5  # 2e-4 drifted the policy (Pass@1 61.8% -> 40.3% in 10 steps, docs/replicate.md)
    c.optim.warmup_steps = 0
    c.train.steps = 10
    return c


def get_pipeline():
    return PipelineSettings(
        world=WorldConfig(seed=0, n_people=60, n_orgs=25, n_cities=25, n_countries=6, n_works=25,
                          n_questions=1000, min_hops=2, max_hops=2, fuzz_rate=0.0, distractor_rate=0.0),
        demos=DemoConfig(recovered_rate=0.0, wrong_rate=0.0, seed=0),
        tools=TOOLS,
        vocab_size=2048,  # the BPE stops near 1.7k merges on this corpus; names are ~2 tokens
        eval_questions=48,
        eval_k=3,
        eval_batch=16,
    )
