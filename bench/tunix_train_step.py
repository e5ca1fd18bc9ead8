"""Tunix side of bench_train (runs inside bench/.venv-tunix; never imports egrpo_jax).

Builds Tunix's Qwen2 with the shape given on the command line and the actor trainer exactly as
tunix.rl.grpo.GrpoLearner wires it (rl.trainer.Trainer + the registered "grpo" policy loss with
GRPOConfig), then times its jitted train step on a fixed TrainExample. Prints one JSON line.
"""

import json
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tunix.models.qwen2 import model as qwen2
from tunix.rl import function_registry
from tunix.rl import trainer as rl_trainer
from tunix.rl.grpo import grpo_learner
from tunix.sft import peft_trainer


def main() -> None:
    a = json.loads(sys.argv[1])
    m = a["model"]
    cfg = qwen2.ModelConfig(
        num_layers=m["num_layers"], vocab_size=m["vocab_size"], embed_dim=m["hidden_size"],
        hidden_dim=m["intermediate_size"], num_heads=m["num_heads"], head_dim=m["head_dim"],
        num_kv_heads=m["num_kv_heads"], rope_theta=int(m["rope_theta"]), norm_eps=m["rms_norm_eps"],
        use_tied_embedding=False,
    )
    mesh = jax.make_mesh((1, jax.device_count()), ("tp", "fsdp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    with mesh:
        model = qwen2.Qwen2(cfg, rngs=nnx.Rngs(0))
        tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-6))
        tcfg = peft_trainer.TrainingConfig(eval_every_n_steps=10**9, max_steps=10**6,
                                           checkpoint_root_directory=None)
        trainer = rl_trainer.Trainer(model, tx, tcfg, custom_checkpoint_metadata_fn=lambda: {})
        algo = grpo_learner.GRPOConfig(num_generations=a["group"], beta=0.0, epsilon=0.2)
        algo.temperature = 1.0
        loss = function_registry.get_policy_loss_fn(algo.policy_loss_fn)
        pad_id, eos_id = 0, -1  # no EOS inside the random completions: every position is trained
        trainer.with_loss_fn(lambda model, train_example, algo_config: loss(
            model, train_example, algo_config=algo, pad_id=pad_id, eos_id=eos_id), has_aux=True)
        trainer.with_gen_model_input_fn(lambda x: {"train_example": x, "algo_config": algo})
        step, _ = trainer.jit_train_and_eval_step(cache_nnx_graph=True)

        rows, p, c, v = a["rows"], a["prompt"], a["completion"], m["vocab_size"]
        rng = np.random.default_rng(0)
        ex = grpo_learner.TrainExample(
            prompt_ids=jnp.asarray(rng.integers(1, v, (rows, p)), jnp.int32),
            prompt_mask=jnp.ones((rows, p), jnp.int32),
            completion_ids=jnp.asarray(rng.integers(1, v, (rows, c)), jnp.int32),
            completion_mask=jnp.ones((rows, c), jnp.int32),
            advantages=jnp.asarray(rng.normal(0, 1, rows), jnp.float32),
            ref_per_token_logps=None,
            old_per_token_logps=jnp.asarray(rng.normal(-np.log(v), 0.1, (rows, c)), jnp.float32),
        )
        t0 = time.perf_counter()
        out = step(ex)
        jax.block_until_ready(out[0])
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(a["steps"]):
            t0 = time.perf_counter()
            out = step(ex)
            loss_v = float(out[0])  # device sync, as ours returns host metrics
            times.append(time.perf_counter() - t0)
    step_s = min(times)  # least disturbed by other load on a shared machine
    print(json.dumps({"step_s": step_s, "tokens_per_s": rows * (p + c) / step_s, "compile_s": compile_s,
                      "loss": loss_v, "tunix": "0.1.7", "device": jax.devices()[0].device_kind}))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
