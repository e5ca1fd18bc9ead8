"""A real decoder turned into a fixed-distribution policy: every next token is drawn from `probs`,
whatever the context. With ActionTokenizer's whole-action tokens it writes valid multi-turn
rollouts of random length through the real engine (tests, bench/bench_rollout.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def fix_next_token_distribution(model, probs: dict[int, float], floor: float = -30.0) -> None:
    """Point `model`'s weights (in place) so that p(next token) = probs for every context; ids not
    in `probs` get logit `floor` (relative). The residual's dim 0 carries a constant, the final norm
    keeps only it, and the head's row 0 holds the scaled log-probs."""

    def put(var, new):
        var.set_value(jax.device_put(new, var.get_value().sharding))

    put(model.embed, model.embed.get_value().at[:, 0].set(100.0))
    put(model.norm.scale, jnp.zeros_like(model.norm.scale.get_value()).at[0].set(1.0))
    head = jnp.zeros_like(model.lm_head.get_value())
    put(model.lm_head, head.at[0, 0].set(1.0))  # a unit head entry: its logit gap is the scale
    lp = jax.nn.log_softmax(model(jnp.asarray([[5]]))[0, 0])
    scale = float(lp[0] - lp[1])
    row = jnp.full((head.shape[1],), floor / scale)
    for tok, p in probs.items():
        row = row.at[tok].set(float(jnp.log(p)) / scale)
    put(model.lm_head, head.at[0].set(row))
