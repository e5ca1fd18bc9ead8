"""Diagnostic (not a speed benchmark): how much of an RL gradient is signal?

    PYTHONPATH=. .venv/bin/python -m bench.rl_grad_noise RUN_DIR [--batches 6] [--config.KEY=VALUE ...]

RUN_DIR is an `egrpo demo` run folder (its data/ and sft/ckpt). From the SFT policy, draws
`--batches` independent rollout batches (data.batch_size questions x G, different questions and
seeds), computes each batch's policy-gradient (the learner's loss, one micro-batch) and prints the
mean pairwise cosine between them: independent batches share only the signal, so the cosine
estimates signal / (signal + noise) of one batch's gradient. Also prints the fraction of trained
tokens the sampler drew with probability < 0.01. Numbers in docs/rl-diagnosis.md.
"""

from __future__ import annotations

import argparse
import json
import os

from egrpo_jax import runtime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--pipeline-config", default="configs/demo_cpu.py")
    ap.add_argument("--batches", type=int, default=6)
    from egrpo_jax.commands.common import add_config_arguments, parse_args

    add_config_arguments(ap)
    args = parse_args(ap, argv)
    runtime.apply_env()
    import jax
    import numpy as np

    from egrpo_jax import config as C
    from egrpo_jax.agent.trajectory import OVERLENGTH
    from egrpo_jax.assembly import build_tools
    from egrpo_jax.data.io import load_questions
    from egrpo_jax.e2e import pipeline as PL
    from egrpo_jax.datagen.synth.build import existing_data
    from egrpo_jax.e2e.settings import load_pipeline_config
    from egrpo_jax.rl.advantages import group_advantages
    from egrpo_jax.rl.batch import pack_trajectories
    from egrpo_jax.rl.logprobs import trained_window
    from egrpo_jax.rl.loop import RLTrainer
    from egrpo_jax.rl.loss import token_weights

    pc = load_pipeline_config(args.pipeline_config)
    data = existing_data(os.path.join(args.run_dir, "data"))
    if data is None:
        raise SystemExit(f"{args.run_dir}/data: not a finished demo data folder")
    _, rl = PL.run_configs(pc, data, os.path.join(args.run_dir, "grad_noise"), tokenizer_vocab=PL.tokenizer_vocab(data))
    rl.checkpoint.init_from, rl.checkpoint.dir, rl.logging.dir = os.path.join(args.run_dir, "sft", "ckpt"), "", ""
    C.apply_overrides(rl, args.config_overrides)
    C.validate(rl)
    mesh, model, tok = PL.load_policy(rl)
    train = load_questions(data.train)
    with build_tools(rl, tok) as tools:
        tr = RLTrainer(rl, model, tok, tools, mesh)
        learner = tr.learner
        grad = jax.jit(jax.grad(lambda p, mb, w: learner._mb_loss(p, mb, w)[0]), static_argnums=(2,))
        rng = np.random.default_rng(0)
        grads, acc, tail = [], [], []
        for i in range(args.batches):
            qs = [train[j] for j in rng.choice(len(train), rl.data.batch_size, replace=False)]
            trajs, scores, _ = tr._rollout_round(qs, 1, seed=1000 + i)
            rewards = np.concatenate([s.rewards for s in scores])
            adv = group_advantages(rewards, rl.rl.group_size, rl.rl.advantage_norm)
            batch = pack_trajectories(trajs, adv, np.array([t.status != OVERLENGTH for t in trajs]),
                                      row_multiple=learner.row_multiple())
            w = np.asarray(token_weights(batch.mask, rl.rl.aggregation), np.float32)
            start, window = trained_window(w)
            mb = jax.tree.map(lambda x: x[0], learner.device_batch(batch, w, start))
            g = grad(learner.state.params, mb, window)
            grads.append(np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(g)]))
            acc.append(float(np.mean(np.concatenate([s.correct for s in scores]))))
            lps = np.concatenate([np.asarray(t.logprobs)[np.asarray(t.loss_mask) > 0] for t in trajs])
            tail.append(float(np.mean(np.exp(lps) < 0.01)))
            print(f"batch {i}: accuracy {acc[-1]:.3f}, tokens drawn with p < 0.01: {tail[-1]:.4f}", flush=True)
    G = np.stack(grads)
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    cos = (G @ G.T)[np.triu_indices(len(grads), 1)]
    out = {"overrides": args.config_overrides, "cosine_mean": float(cos.mean()), "cosine_std": float(cos.std()),
           "cosine_sem": float(cos.std() / np.sqrt(len(cos))), "pairs": int(len(cos)),
           "accuracy": float(np.mean(acc)), "tail_fraction": float(np.mean(tail)), "load_avg": os.getloadavg()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
