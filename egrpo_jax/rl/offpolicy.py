"""One-step off-policy RL (rl.off_policy_steps = 1): step t+1's rollouts run while step t trains.

At step t the trainer takes the rollouts drawn during step t-1 (from the policy before update
t-1, a snapshot copy, so the update's donated buffers cannot vanish under the sampler), starts
the rollouts of step t+1's questions from a snapshot of the current policy in a worker thread,
and trains. The loss weights each token by min(pi / sampler, rl.is_cap) (rl/loss.py). The two
threads dispatch to the same devices; on CPU the gain is host work (tool latency, tokenisation,
parsing) overlapping the update (bench/bench_offpolicy.py; not measured on an accelerator).

The question stream is drawn one batch ahead; a checkpoint records the position *before* that
batch, so a resumed run rolls it out again (on-policy, from the restored parameters).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import jax
from flax import nnx

from egrpo_jax.models.lora import has_adapters



class LaggedStream:
    """A resumable question stream whose saved position ignores the batch drawn ahead."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self._before_ahead: dict | None = None

    def __next__(self):
        return next(self.stream)

    def draw_ahead(self):
        self._before_ahead = self.stream.get_state()
        return next(self.stream)

    def taken(self) -> None:
        """The batch drawn ahead is being trained on now: the position moves past it."""
        self._before_ahead = None

    def get_state(self) -> dict[str, Any]:
        return self.stream.get_state() if self._before_ahead is None else self._before_ahead

    def set_state(self, state: dict[str, Any]) -> None:
        self.stream.set_state(state)
        self._before_ahead = None


def snapshot(model) -> nnx.State:
    """The model's state with its own copy of what an update donates: every array, or with LoRA only
    the adapters (the frozen base is never donated, so it is shared, not copied)."""
    lora = has_adapters(model)

    def own(var):
        value = var.get_value()
        donated = isinstance(value, jax.Array) and (not lora or isinstance(var, nnx.LoRAParam))
        return var.replace(value.copy()) if donated else var

    return jax.tree.map(own, nnx.state(model), is_leaf=lambda x: isinstance(x, nnx.Variable))


class OffPolicySteps:
    """The step function of `egrpo train` with rollouts one step ahead."""

    def __init__(self, trainer, stream, last_step: int) -> None:
        """`trainer`: an rl.loop.RLTrainer (its rollouts / update halves of a step)."""
        self.trainer, self.last_step = trainer, int(last_step)
        self.stream = LaggedStream(stream)
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rollouts")
        self._pending: concurrent.futures.Future | None = None

    def step(self, n: int, rng) -> dict[str, float]:
        t0 = time.perf_counter()
        seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
        if self._pending is None:  # the first step (or the first after a resume): on-policy
            ro = self.trainer.rollouts(next(self.stream), n, seed)
            staleness, waited = 0, 0.0
        else:
            t_wait = time.perf_counter()
            ro = self._pending.result()
            waited = time.perf_counter() - t_wait
            self._pending = None
            self.stream.taken()
            staleness = 1
        if n < self.last_step:
            ahead = self.stream.draw_ahead()
            ahead_seed = int(jax.random.randint(jax.random.fold_in(rng, 1), (), 0, 2**31 - 1))
            self._pending = self._worker.submit(self.trainer.rollouts, ahead, n + 1, ahead_seed,
                                                params=snapshot(self.trainer.model))
        res = self.trainer.update(ro, n, staleness=staleness)
        return dict(res.metrics, **{"time/rollout_wait_s": waited, "time/step_s": time.perf_counter() - t0})

    def close(self) -> None:
        """Waits for rollouts still running (a failed or finished run draws no more)."""
        if self._pending is not None:
            self._pending.cancel()
        self._worker.shutdown(wait=True)
