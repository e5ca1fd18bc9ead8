"""`egrpo replicate --config configs/sparse_cpu.py`: the replicate world from a sparse-reward start
(issue 31 item 2). DRAFT: its start has not been measured yet.

The Zen 5 grid's 800-step start answers 40% of held-out questions, so most RL groups at step 1 already
hold a correct rollout and GRPO's 0/1 reward has signal; E-GRPO's partial credit matters where it
does not. The target here: held-out Pass@1 <= 15% and >= 50% of RL groups all wrong at step 1
(`groups/all_wrong` in the first row of a run's metrics.jsonl, docs/rewards.md).

The one knob turned is the cold start's length: the world, demos, tools and RL recipe are
replicate_cpu.py's, so the data (and its SHA-256) are the same and only the SFT start differs. In this
world 250 SFT steps gave 1.9% Pass@1 (the chain-following skill not yet formed) and 800 give 32-40%
(docs/replicate.md); 400, with the cosine schedule over 400 steps, is the guess for a start between
them. Measure it once (SFT ~19 min at 2.8 s per step on 2 quiet cores, the 300-question evaluation
~7 min, one GRPO step ~1 min):

    egrpo replicate --config configs/sparse_cpu.py --out runs/sparse --seeds 0 --alphas 0 --rl-steps 1

then read Pass@1 in runs/sparse/eval_sft/summary.json and groups/all_wrong in
runs/sparse/runs/alpha0_seed0/logs/metrics.jsonl. Pass@1 above 15%: fewer steps (300); all-wrong
groups near 100% (no mixed group: GRPO cannot learn at all): more steps (500).
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location("_replicate_cpu", os.path.join(os.path.dirname(__file__),
                                                                               "replicate_cpu.py"))
_replicate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_replicate)

SFT_STEPS = 400


def get_sft_config():
    c = _replicate.get_sft_config()
    c.train.steps = SFT_STEPS
    return c


def get_config():
    return _replicate.get_config()


def get_pipeline():
    return _replicate.get_pipeline()
