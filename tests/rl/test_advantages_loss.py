import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egrpo_jax.rl.advantages import group_advantages, informative_groups
from egrpo_jax.rl.loss import k3_kl, policy_loss_terms, sft_loss_terms, token_weights


def test_group_advantages_hand_computed_and_zero_std():
    r = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 0.3, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    a = np.asarray(group_advantages(r, 4))
    # group 0: mean .5, std .5 -> +-1 (eps 1e-6)
    np.testing.assert_allclose(a[:4], [1, -1, -1, 1], atol=1e-5)
    # identical-reward groups (all E-GRPO partial, all wrong, all correct): exactly 0, no NaN
    assert np.all(a[4:] == 0.0)
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(informative_groups(r, 4), [True, False, False, False])
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(np.zeros(5), 4)


def test_group_advantages_egrpo_group():
    r = np.array([1.0, 0.3, 0.15, 0.0])
    a = np.asarray(group_advantages(r, 4))
    ref = (r - r.mean()) / (r.std() + 1e-6)
    np.testing.assert_allclose(a, ref, rtol=1e-5)


def _numpy_loss(logp, old, adv, mask, eps_low, eps_high, agg, norm=1.0, beta=0.0, ref=None):
    B, T = logp.shape
    nseq, loss_sum_tok, ntok_all = 0, 0.0, 0.0
    per_seq = []
    for b in range(B):
        terms = []
        for t in range(T):
            if mask[b, t] == 0:
                continue
            ratio = np.exp(logp[b, t] - old[b, t])
            c = min(max(ratio, 1 - eps_low), 1 + eps_high)
            v = max(-adv[b] * ratio, -adv[b] * c)
            if beta:
                d = ref[b, t] - logp[b, t]
                v += beta * (np.exp(d) - d - 1)
            terms.append(v)
        if terms:
            nseq += 1
            per_seq.append((sum(terms), len(terms)))
            loss_sum_tok += sum(terms)
            ntok_all += len(terms)
    if agg == "seq_mean":
        return sum(s / n for s, n in per_seq) / nseq
    if agg == "token_mean":
        return loss_sum_tok / ntok_all
    return sum(s / norm for s, _ in per_seq) / nseq


@pytest.mark.parametrize("agg", ["seq_mean", "token_mean", "dr_grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_loss_equals_numpy_reference(agg, beta):
    rng = np.random.default_rng(0)
    B, T = 5, 9
    logp = rng.normal(-2, 0.5, (B, T)).astype(np.float32)
    old = (logp + rng.normal(0, 0.3, (B, T))).astype(np.float32)
    ref = (logp + rng.normal(0, 0.2, (B, T))).astype(np.float32)
    adv = rng.normal(0, 1, B).astype(np.float32)
    mask = (rng.random((B, T)) < 0.6).astype(np.float32)
    mask[:, 0] = 0
    mask[3] = 0  # an excluded (overlength) rollout: out of the loss and of the sequence count
    w = token_weights(mask, agg, dr_grpo_norm=16.0)
    loss, sums = policy_loss_terms(jnp.asarray(logp), jnp.asarray(old), jnp.asarray(adv), w,
                                   eps_low=0.2, eps_high=0.28, beta=beta, ref_logp=jnp.asarray(ref))
    expected = _numpy_loss(logp, old, adv, mask, 0.2, 0.28, agg, 16.0, beta, ref)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert float(sums["tokens"]) == mask.sum()
    ratio = np.exp(logp - old)
    low = ((adv[:, None] < 0) & (ratio < 0.8) & (mask > 0)).sum()
    high = ((adv[:, None] > 0) & (ratio > 1.28) & (mask > 0)).sum()
    assert float(sums["clip_low"]) == low and float(sums["clip_high"]) == high
    kl = ((ratio - 1 - (logp - old)) * mask).sum()
    np.testing.assert_allclose(float(sums["kl_sampler"]), kl, rtol=1e-5)


def test_gradient_zero_on_masked_tokens():
    rng = np.random.default_rng(1)
    B, T = 3, 8
    logp = jnp.asarray(rng.normal(-1, 0.3, (B, T)), jnp.float32)
    old = logp + 0.1
    adv = jnp.asarray([1.0, -0.5, 2.0])
    mask = np.ones((B, T), np.float32)
    mask[:, :3] = 0
    mask[2] = 0
    for agg in ("seq_mean", "token_mean", "dr_grpo"):
        w = token_weights(mask, agg, 8.0)
        g = jax.grad(lambda lp: policy_loss_terms(lp, old, adv, w, eps_low=0.2, eps_high=0.28,
                                                  beta=0.1, ref_logp=old)[0])(logp)
        g = np.asarray(g)
        assert np.all(g[mask == 0] == 0.0)
        assert np.all(g[mask > 0] != 0.0)


def test_on_policy_gradient_is_advantage_weighted():
    # ratio = 1: d loss / d logp = -A * weight for every trained token
    logp = jnp.full((2, 4), -1.0)
    adv = jnp.asarray([1.0, -2.0])
    mask = np.array([[0, 1, 1, 0], [0, 1, 1, 1]], np.float32)
    w = token_weights(mask, "seq_mean")
    g = jax.grad(lambda lp: policy_loss_terms(lp, logp, adv, w, eps_low=0.2, eps_high=0.2)[0])(logp)
    np.testing.assert_allclose(np.asarray(g), [[0, -0.25, -0.25, 0], [0, 1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)


def test_k3_and_sft_terms():
    assert float(k3_kl(jnp.asarray(-1.0), jnp.asarray(-1.0))) == 0.0
    assert float(k3_kl(jnp.asarray(-1.0), jnp.asarray(-2.0))) > 0.0
    mask = np.array([[0, 1, 1], [0, 1, 0]], np.float32)
    logp = jnp.asarray([[0.0, -1.0, -2.0], [0.0, -4.0, -9.0]])
    loss, sums = sft_loss_terms(logp, token_weights(mask, "token_mean"))
    assert float(loss) == pytest.approx(7 / 3)
    assert float(sums["nll"]) == 7.0
    with pytest.raises(ValueError, match="aggregation"):
        token_weights(mask, "bogus")


def test_advantage_norms_hand_computed():
    # group 0: correct vs wrong; group 1: all wrong with tiny E-GRPO partial differences
    r = np.array([1.0, 0.0, 0.0, 0.0, 0.30, 0.29, 0.30, 0.29])
    c = np.array([0.75, -0.25, -0.25, -0.25, 0.005, -0.005, 0.005, -0.005])
    g = group_advantages(r, 4, "group_std")
    np.testing.assert_allclose(g[:4], c[:4] / np.sqrt(0.1875), rtol=1e-5)
    np.testing.assert_allclose(g[4:], [1, -1, 1, -1], rtol=1e-3)  # scale-free: +-1 from a 0.01 gap
    b = group_advantages(r, 4, "batch_std")
    np.testing.assert_allclose(b, c / c.std(), rtol=1e-5)
    assert abs(b[4]) < 0.05 * abs(b[0])  # one scale per batch: the tiny gap stays tiny
    np.testing.assert_allclose(group_advantages(r, 4, "none"), c, atol=1e-7)
    for norm in ("group_std", "batch_std", "none"):
        flat = group_advantages(np.array([0.3, 0.3, 1.0, 1.0]), 2, norm)
        assert np.all(flat == 0.0)
    with pytest.raises(ValueError, match="advantage_norm"):
        group_advantages(r, 4, "whiten")


def test_off_policy_loss_weights_tokens_by_the_truncated_importance_ratio():
    # two rollouts x 3 tokens; the learner moved since the sampler drew them
    logp = jnp.asarray([[-1.0, -0.5, -2.0], [-0.2, -1.5, -0.7]])
    old = jnp.asarray([[-1.5, -0.5, -0.6], [-0.9, -1.0, -0.7]])
    adv = jnp.asarray([1.0, -0.5])
    w = jnp.asarray([[0.2, 0.3, 0.5], [0.0, 0.6, 0.4]])  # token (1, 0) is not trained
    loss, sums = policy_loss_terms(logp, old, adv, w, eps_low=0.2, eps_high=0.28, is_cap=1.5)
    ratio = np.exp(np.asarray(logp - old))
    iw = np.minimum(ratio, 1.5)  # e^0.5 = 1.65 and e^0.7 = 2.01 are truncated
    want = -np.sum(np.asarray(w) * iw * np.asarray(adv)[:, None])
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert float(sums["is_truncated"]) == 1.0  # (0, 0); (1, 0) is truncated too but not trained
    assert float(sums["ratio"]) == pytest.approx(float(np.sum((np.asarray(w) > 0) * ratio)), rel=1e-6)
    # the gradient is the importance-weighted policy gradient: no clipping at the step's start
    g = jax.grad(lambda lp: policy_loss_terms(lp, old, adv, w, eps_low=0.2, eps_high=0.28, is_cap=1.5)[0])(logp)
    np.testing.assert_allclose(np.asarray(g), -np.asarray(w) * iw * np.asarray(adv)[:, None], rtol=1e-6)
    # on-policy (is_cap = 0) the same tokens are clipped instead: a different update
    g0 = jax.grad(lambda lp: policy_loss_terms(lp, old, adv, w, eps_low=0.2, eps_high=0.28)[0])(logp)
    assert float(g0[0, 0]) == 0.0 and float(g[0, 0]) != 0.0
