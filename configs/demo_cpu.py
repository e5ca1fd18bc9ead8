"""`egrpo demo` (make demo): the whole stack on a 2-core CPU in about 20 minutes.

A pipeline config: get_config() is the RL run (egrpo_jax.config schema), get_sft_config() the
SFT cold start, get_pipeline() the synthetic world, tokenizer and evaluation. Paths (data,
tokenizer, index, checkpoints, logs) are filled in by the pipeline under the run folder.

Sized so RL visibly helps at CPU scale (docs/rl-diagnosis.md has the measurements behind every
value here):
- the world: 2-hop questions about named entities (no fuzzed descriptions, no near-name
  distractors), one search hit per query, a BPE (<= 2048 tokens) in which the fixed system prompt
  is one token, so a rollout fits in 256 tokens; 173 held-out test questions;
- the cold start imitates a weak teacher: 30% of its demonstrations answer one hop too early
  (DemoConfig.early_stop_rate) and SFT learns from all of them. That habit is the same mistake in
  every question, so RL can unlearn it in general; per-entity copying errors, the other failure
  mode of a 1M-parameter policy, barely move in the steps a CPU affords;
- RL samples with the distribution it is evaluated with (temperature 0.6, top-p 0.95; the learner
  scores tokens under the same distribution), 16 questions x G = 8 per step, Adam at 1e-4 with
  a 5-step warm-up: lr 5e-4 already lets the noise of 128 rollouts degrade the policy.
"""

from egrpo_jax.config import default_config
from egrpo_jax.datagen.synth.oracle import DemoConfig
from egrpo_jax.datagen.synth.world import WorldConfig
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
    c.data.correct_demos_only = False  # the early-stop demos are part of the cold start
    c.train.steps = 400  # ~13 epochs: the copy skill forms late (loss 0.3 -> 0.1 between steps 150 and 250)
    c.optim.lr = 3e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 10
    c.optim.min_lr_ratio = 0.1
    c.optim.weight_decay = 0.01
    return c


def get_config():
    c = _common()
    c.data.batch_size = 16  # questions per step
    c.rl.group_size = 8
    c.rl.alpha = 0.3
    c.sampling.temperature = 0.6  # the paper's inference sampling, also used by the evaluation
    c.sampling.top_p = 0.95
    c.optim.lr = 1e-4
    c.optim.warmup_steps = 5
    c.train.steps = 25
    return c


def get_pipeline():
    return PipelineSettings(
        world=WorldConfig(seed=0, n_people=80, n_orgs=30, n_cities=30, n_countries=8, n_works=30,
                          n_questions=2000, min_hops=2, max_hops=2, fuzz_rate=0.0, distractor_rate=0.0,
                          dev_fraction=0.05, test_fraction=0.25),
        demos=DemoConfig(recovered_rate=0.0, wrong_rate=0.0, early_stop_rate=0.3, seed=0),
        tools=TOOLS,
        vocab_size=2048,  # the BPE stops near 1.7k merges on this corpus; names are ~2 tokens
        eval_questions=0,  # all 173 held-out test questions
        eval_k=3,
        eval_batch=16,
    )
