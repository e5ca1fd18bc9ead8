"""The sharded train step: log-probs of the trajectories, loss, AdamW, gradient accumulation.

One `jax.jit` step with the train state donated. The batch arrives as [M, b, T] (M
micro-batches); a `lax.scan` accumulates gradients, loss and metric sums over them. Because the
loss is a weighted token sum with weights normalised over the whole batch (rl.loss.token_weights),
the accumulated gradient equals the full-batch gradient. A step whose gradient norm or loss is
not finite leaves params and optimizer state untouched and increments `skipped`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from egrpo_jax.config import OPTIMIZERS, SCHEDULES
from egrpo_jax.mesh import named_sharding
from egrpo_jax.models.sharding import is_abstract
from egrpo_jax.rl.batch import TrainBatch, drop_silent_rows
from egrpo_jax.rl.logprobs import token_logprobs, trained_window
from egrpo_jax.rl.loss import policy_loss_terms, sft_loss_terms, token_weights
from egrpo_jax.sampling.api import SamplingParams


@struct.dataclass
class TrainState:
    params: Any  # nnx.State of the trained variables: every nnx.Param, or with LoRA the nnx.LoRAParam adapters
    opt_state: Any
    step: jax.Array  # int32: train steps taken (applied or skipped)
    skipped: jax.Array  # int32: steps skipped for non-finite gradients


@dataclasses.dataclass(frozen=True)
class OptimSettings:
    name: str = "adamw"  # adamw | sgd (see make_optimizer)
    lr: float = 1e-5
    warmup_steps: int = 0
    schedule: str = "constant"  # cosine | constant
    total_steps: int = 1  # for the cosine decay
    min_lr_ratio: float = 0.0  # cosine ends at lr * min_lr_ratio
    clip_norm: float = 1.0  # 0 disables global-norm clipping
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


def lr_schedule(o: OptimSettings) -> optax.Schedule:
    if o.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {o.schedule!r}")
    warm = max(o.warmup_steps, 0)
    if o.schedule == "cosine":
        decay = optax.cosine_decay_schedule(o.lr, max(o.total_steps - warm, 1), alpha=o.min_lr_ratio)
    else:
        decay = optax.constant_schedule(o.lr)
    if warm == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, o.lr, warm), decay], [warm])


def make_optimizer(o: OptimSettings) -> optax.GradientTransformation:
    """AdamW or plain SGD (weight decay on matrices only, not norms/biases) after optional
    global-norm clipping.

    SGD is there for RL: Adam divides each coordinate by its own gradient scale, so in the first
    steps of RL (little history in its second moment) every coordinate moves by about lr whatever
    its gradient, and the noise of a few hundred sampled rollouts gets the same step as the signal.
    SGD keeps the gradient's direction (docs/rl-diagnosis.md measures both).
    """
    if o.name not in OPTIMIZERS:
        raise ValueError(f"optim.name must be one of {OPTIMIZERS}, got {o.name!r}")
    parts = [optax.clip_by_global_norm(o.clip_norm)] if o.clip_norm > 0 else []
    matrices = lambda params: jax.tree.map(lambda x: x.ndim >= 2, params)  # noqa: E731
    if o.name == "sgd":
        if o.weight_decay > 0:
            parts.append(optax.add_decayed_weights(o.weight_decay, mask=matrices))
        parts.append(optax.sgd(lr_schedule(o)))
    else:
        parts.append(optax.adamw(lr_schedule(o), b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                                 mask=matrices))
    return optax.chain(*parts)


@dataclasses.dataclass(frozen=True)
class LossSettings:
    kind: str = "rl"  # rl | sft
    eps_low: float = 0.2
    eps_high: float = 0.28
    beta: float = 0.0
    logprob_chunk: int = 0  # time chunk for the vocab projection (0 = all at once)
    # > 0: rollouts may come from an older policy (rl.off_policy_steps); tokens are weighted by the
    # truncated importance weight min(pi / sampler, is_cap) (rl.loss.policy_loss_terms)
    is_cap: float = 0.0
    # RL: the rollouts' sampling distribution, so learner log-probs match the sampler's (SFT: plain)
    sampling: SamplingParams = SamplingParams()

    def __post_init__(self) -> None:
        if self.kind == "rl" and self.sampling.temperature <= 0:
            raise ValueError("sampling.temperature must be > 0 for RL rollouts (greedy rollouts have no "
                             f"log-probs to train on), got {self.sampling.temperature}")


def _leaf_sharding(x: jax.Array, mesh: Mesh) -> NamedSharding:
    sh = getattr(x, "sharding", None)
    if isinstance(sh, NamedSharding) and sh.mesh == mesh:
        return sh
    return NamedSharding(mesh, P())


def _tree_add(a, b):
    return jax.tree.map(jnp.add, a, b)


def _opt_state_shardings(tx: optax.GradientTransformation, params, mesh: Mesh):
    """The optimizer state's shardings: every copy of the parameter tree in it (Adam's moments) sharded
    as the parameters, the rest (step counts) replicated. tx.init makes the moments with zeros_like,
    which leaves XLA no reason to shard them: left to it, a 7B model's moments took 57 GiB on every
    chip (`egrpo plan-memory` showed it)."""
    replicated = NamedSharding(mesh, P())
    return optax.tree_map_params(tx, lambda _, p: _leaf_sharding(p, mesh), jax.eval_shape(tx.init, params), params,
                                 transform_non_params=lambda v: jax.tree.map(lambda _: replicated, v))


class Learner:
    """Owns the train state of an NNX policy and a jitted, donated, sharded train step.

    `self.model` stays usable (e.g. by the sampling engine): after each step its variables are
    pointed at the new parameters with `nnx.update`, no copy.

    A model with LoRA adapters (nnx.LoRAParam) trains only those: the train state (so gradients,
    optimizer state and what the step donates) holds the adapters, the frozen base stays in
    `self.rest`, passed to the step as an argument (a closed-over array would be baked into the
    executable as a constant). The KL reference is then the base itself: the adapters zeroed.
    """

    def __init__(
        self,
        model: nnx.Module,
        mesh: Mesh,
        optim: OptimSettings,
        loss: LossSettings,
        *,
        microbatches: int = 1,
    ):
        if loss.kind not in ("rl", "sft"):
            raise ValueError(f"loss kind must be 'rl' or 'sft', got {loss.kind!r}")
        self.model, self.mesh, self.optim, self.loss, self.microbatches = model, mesh, optim, loss, microbatches
        lora = bool(jax.tree.leaves(nnx.state(model, nnx.LoRAParam)))
        self.graphdef, params, self.rest = nnx.split(model, nnx.LoRAParam if lora else nnx.Param, ...)
        self.tx = make_optimizer(optim)
        # An abstract policy (models.sharding.abstract_sharded_model) makes an abstract learner: its state
        # is shapes and shardings only, for compiling the step ahead of time (rl.memory_plan)
        self.abstract = is_abstract(params)
        opt_sh = _opt_state_shardings(self.tx, params, mesh)
        opt_state = (jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                  jax.eval_shape(self.tx.init, params), opt_sh) if self.abstract
                     else jax.jit(self.tx.init, out_shardings=opt_sh)(params))
        counter = (lambda: jax.ShapeDtypeStruct((), jnp.int32)) if self.abstract else (lambda: jnp.zeros((), jnp.int32))
        state = TrainState(params, opt_state, counter(), counter())  # two buffers: both are donated
        # Pin every leaf to a NamedSharding on the mesh and make the step keep them: otherwise
        # the second call sees different input shardings than the first and recompiles.
        self.state_shardings = jax.tree.map(lambda x: _leaf_sharding(x, mesh), state)
        self.state = self._place(state, self.state_shardings)
        self.ref_params = None
        if loss.kind == "rl" and loss.beta > 0:
            # frozen reference = the initial policy, only materialised when the KL term is on; with
            # LoRA the base: zero adapters over the shared base weights (b = 0 removes the update)
            self.ref_params = params if self.abstract else jax.tree.map(jnp.zeros_like if lora else jnp.copy, params)
        self._jit_step = jax.jit(self._step_fn, donate_argnums=(0,), static_argnums=(2,),
                                 out_shardings=(self.state_shardings, None))
        self._ref_logp = jax.jit(self._ref_logp_fn, static_argnums=(3,))
        self.compiled_shapes: set[tuple[int, ...]] = set()

    # ---- pure functions (traced) -------------------------------------------------------------
    def _mb_loss(self, params, mb, window: int, rest):
        model = nnx.merge(self.graphdef, params, rest)
        logp, ent = token_logprobs(model, mb["tokens"], self.loss.logprob_chunk, mb["start"], window,
                                   self.loss.sampling, mb.get("positions"), mb.get("segments"))
        w = mb["weights"]
        if self.loss.kind == "sft":
            loss, sums = sft_loss_terms(logp, w)
        else:
            loss, sums = policy_loss_terms(
                logp, mb["old_logp"], mb["advantages"], w, eps_low=self.loss.eps_low,
                eps_high=self.loss.eps_high, beta=self.loss.beta, ref_logp=mb.get("ref_logp"),
                is_cap=self.loss.is_cap,
            )
        sums["entropy"] = jnp.sum((w > 0) * ent)
        return loss, sums

    def _step(self, state: TrainState, batch: dict[str, jax.Array], window: int):
        return self._jit_step(state, batch, window, self.rest)

    def _step_fn(self, state: TrainState, batch: dict[str, jax.Array], window: int, rest):
        grad_fn = jax.value_and_grad(self._mb_loss, has_aux=True)
        first = jax.tree.map(lambda x: x[0], batch)
        zeros_g = jax.tree.map(jnp.zeros_like, state.params)
        _, sums_shape = jax.eval_shape(lambda p, b: self._mb_loss(p, b, window, rest), state.params, first)
        zeros_s = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape)

        def body(carry, mb):
            g_acc, l_acc, s_acc = carry
            (loss_val, s), g = grad_fn(state.params, mb, window, rest)
            return (_tree_add(g_acc, g), l_acc + loss_val, _tree_add(s_acc, s)), None

        if jax.tree.leaves(batch)[0].shape[0] == 1:  # one micro-batch: no accumulation buffers
            (loss, sums), grads = grad_fn(state.params, first, window, rest)
        else:
            (grads, loss, sums), _ = jax.lax.scan(body, (zeros_g, jnp.zeros((), jnp.float32), zeros_s), batch)
        gnorm = optax.tree.norm(grads)
        finite = jnp.isfinite(gnorm) & jnp.isfinite(loss)

        def apply(_):
            updates, opt = self.tx.update(grads, state.opt_state, state.params)
            return optax.apply_updates(state.params, updates), opt

        params, opt = jax.lax.cond(finite, apply, lambda _: (state.params, state.opt_state), None)
        new = TrainState(params, opt, state.step + 1, state.skipped + (~finite).astype(jnp.int32))
        metrics = dict(sums, loss=loss, grad_norm=gnorm, finite=finite)
        return new, metrics

    def _ref_logp_fn(self, ref_params, tokens, start, window: int, rest):
        model = nnx.merge(self.graphdef, ref_params, rest)
        return jax.lax.map(lambda x: token_logprobs(model, x[0], self.loss.logprob_chunk, x[1], window,
                                                    self.loss.sampling)[0], (tokens, start))

    # ---- host side ---------------------------------------------------------------------------
    def _place(self, tree, shardings):
        """Host or device arrays -> arrays with these shardings; an abstract learner's become
        jax.ShapeDtypeStructs carrying them (nothing is allocated)."""
        if not self.abstract:
            return jax.device_put(tree, shardings)
        return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s), tree, shardings)

    def device_batch(self, batch: TrainBatch, weights: np.ndarray, start: np.ndarray) -> dict[str, jax.Array]:
        """[B, T] host arrays -> [M, B/M, T] global arrays sharded over the data axes."""
        m = self.microbatches
        b, t = batch.tokens.shape
        if b % m:
            raise ValueError(f"batch rows {b} not divisible by optim.microbatches {m}")
        host = {
            "tokens": batch.tokens, "weights": weights, "old_logp": batch.old_logp,
            "advantages": batch.advantages, "start": start,
        }
        if batch.segments is not None:  # packed rows (rl.batch.pack_sequences(pack=True))
            host.update(positions=batch.positions, segments=batch.segments)
        out = {}
        for k, v in host.items():
            v = np.asarray(v).reshape((m, b // m) + v.shape[1:])
            axes = (None, "batch") + (None,) * (v.ndim - 2)
            out[k] = self._place(v, named_sharding(axes, v.shape, self.mesh))
        return out

    def row_multiple(self) -> int:
        """Rows per batch must be a multiple of this (micro-batches x data-parallel size)."""
        return self.microbatches * self.mesh.shape["data"] * self.mesh.shape["fsdp"]

    def train_step(self, batch: TrainBatch, aggregation: str = "seq_mean", dr_grpo_norm: float = 1.0) -> dict:
        """One update on `batch`; returns host metrics (means over trained tokens).

        RL without a KL term trains only on rows with a non-zero advantage (rl.batch.drop_silent_rows):
        the same update for less compute; the metrics are then over those rows' tokens."""
        dev, window = self._step_inputs(batch, aggregation, dr_grpo_norm)
        m, b, t = dev["tokens"].shape
        self.compiled_shapes.add((m * b, t, window))
        with jax.set_mesh(self.mesh):
            self.state, metrics = self._step(self.state, dev, window)
        nnx.update(self.model, self.state.params)
        return summarize(jax.device_get(metrics))

    def lower_step(self, batch: TrainBatch, aggregation: str = "seq_mean", dr_grpo_norm: float = 1.0):
        """The jitted step train_step(batch) would run, lowered (not run): `.compile().memory_analysis()`
        is its per-device memory. On an abstract learner nothing is allocated (rl.memory_plan)."""
        dev, window = self._step_inputs(batch, aggregation, dr_grpo_norm)
        with jax.set_mesh(self.mesh):
            return self._jit_step.lower(self.state, dev, window, self.rest)

    def _step_inputs(self, batch: TrainBatch, aggregation: str, dr_grpo_norm: float) -> tuple[dict, int]:
        """The step's device batch and its static log-prob window."""
        if batch.segments is not None and self.loss.kind != "sft":
            raise ValueError("Learner.train_step: packed rows are for SFT; RL weights and advantages are per row")
        agg = "token_mean" if self.loss.kind == "sft" else aggregation
        weights = np.asarray(token_weights(batch.mask, agg, dr_grpo_norm), np.float32)
        if self.loss.kind == "rl" and self.ref_params is None:
            batch, weights = drop_silent_rows(batch, weights, self.row_multiple())
        # log-probs only over the span of trained tokens (a static, power-of-two window)
        start, window = trained_window(weights)
        dev = self.device_batch(batch, weights, start)
        if self.ref_params is not None:
            ref = self._ref_logp.eval_shape if self.abstract else self._ref_logp
            dev["ref_logp"] = ref(self.ref_params, dev["tokens"], dev["start"], window, self.rest)
        return dev, window

    def set_state(self, state: TrainState) -> None:
        self.state = jax.device_put(state, self.state_shardings)
        nnx.update(self.model, state.params)

    @property
    def step(self) -> int:
        return int(self.state.step)


def summarize(m: dict) -> dict[str, float]:
    """Metric sums -> means over the trained tokens."""
    n = max(float(m["tokens"]), 1.0)
    out = {"loss": float(m["loss"]), "grad_norm": float(m["grad_norm"]), "skipped": float(not m["finite"]),
           "trained_tokens": float(m["tokens"]), "entropy": float(m["entropy"]) / n}
    for k in ("clip_low", "clip_high", "kl_sampler", "kl_ref", "ratio", "is_truncated", "nll"):
        if k in m:
            out[k] = float(m[k]) / n
    return out
