"""The rollout engine against full recomputation without a cache (tiny random models)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from egrpo_jax.mesh import make_mesh, single_device_mesh
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.sampling.api import BUDGET, EOS, LENGTH, STOP, SamplingParams
from egrpo_jax.sampling.engine import Engine, bucket

GREEDY = SamplingParams(temperature=0.0)
SAMPLED = SamplingParams(temperature=0.9, top_k=40)
PAD = 64  # reference sequences are padded to this length (one compile)


@pytest.fixture(scope="module")
def model():
    return create_model(tiny_config("qwen2"), seed=0)


@pytest.fixture(scope="module")
def ref_logprobs(model):
    """log-softmax of the last position of `seq`, recomputed from scratch without a cache."""
    fwd = jax.jit(lambda t: jax.nn.log_softmax(model(t), axis=-1))

    def run(seq):
        toks = np.zeros((1, PAD), np.int32)
        toks[0, : len(seq)] = seq
        return np.asarray(fwd(jnp.asarray(toks))[0, len(seq) - 1])

    return run


def greedy_reference(ref_logprobs, prompt, n):
    seq, raws = list(prompt), []
    for _ in range(n):
        lp = ref_logprobs(seq)
        t = int(np.argmax(lp))
        seq.append(t)
        raws.append(lp[t])
    return seq[len(prompt):], raws


PROMPTS = [[1, 2, 3], [5], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17], [200, 3]]


def test_bucket():
    assert [bucket(n, 16) for n in (0, 1, 16, 17, 100)] == [16, 16, 16, 32, 128]


def test_greedy_matches_full_recompute_ragged(model, ref_logprobs):
    eng = Engine(model, num_rows=4, max_len=48, sampling=GREEDY)
    eng.start(PROMPTS)
    segs = eng.decode_segment(12)
    for p, s in zip(PROMPTS, segs):
        want, raws = greedy_reference(ref_logprobs, p, 12)
        assert s.tokens == want
        assert s.stop_reason == BUDGET
        np.testing.assert_allclose(s.raw_logprobs, raws, atol=1e-5)
        assert s.logprobs == [0.0] * 12
    assert eng.lengths().tolist() == [len(p) + 12 for p in PROMPTS]


def test_sampled_logprobs_equal_model_log_softmax(model, ref_logprobs):
    eng = Engine(model, num_rows=4, max_len=48, sampling=SamplingParams(temperature=1.0), eos_ids=[])
    eng.start(PROMPTS, seed=3)
    for p, s in zip(PROMPTS, eng.decode_segment(10)):
        seq = list(p)
        for t, lp, raw in zip(s.tokens, s.logprobs, s.raw_logprobs):
            want = ref_logprobs(seq)[t]
            assert lp == pytest.approx(want, abs=1e-5)  # temperature 1, no filter: same distribution
            assert raw == pytest.approx(want, abs=1e-5)
            seq.append(t)


def test_extend_equals_reprefill(model):
    """prefill(A) + decode + extend(B) + decode == prefill(A + decoded + B) + decode (sampled)."""
    eng = Engine(model, num_rows=4, max_len=64, sampling=SAMPLED)
    eng.start(PROMPTS, seed=11)
    first = eng.decode_segment([5, 7, 3, 6])
    appended = [[4, 4, 9], [], [30] * 17, [77]]  # row 1 is not extended; 17 > one 16-chunk
    eng.extend([0, 2, 3], [appended[0], appended[2], appended[3]])
    lengths = eng.lengths().tolist()
    second = eng.decode_segment(9)

    again = Engine(model, num_rows=4, max_len=64, sampling=SAMPLED)
    full = [p + s.tokens + a for p, s, a in zip(PROMPTS, first, appended)]
    again.start(full, seed=11)
    assert again.lengths().tolist() == lengths
    third = again.decode_segment(9)
    for r in (0, 2, 3):
        assert second[r].tokens == third[r].tokens
        np.testing.assert_allclose(second[r].logprobs, third[r].logprobs, atol=1e-5)
        np.testing.assert_allclose(second[r].raw_logprobs, third[r].raw_logprobs, atol=1e-5)
    # row 1 simply continued: its tokens equal the re-prefilled row's continuation too
    assert second[1].tokens == third[1].tokens


def _first_match(tokens, seq):
    for i in range(len(seq) - 1, len(tokens)):
        if tokens[i - len(seq) + 1: i + 1] == seq:
            return i
    return None


def test_multi_token_stop_sequences_stop_exactly(model):
    base = Engine(model, num_rows=4, max_len=48, sampling=GREEDY)
    base.start(PROMPTS)
    free = [s.tokens for s in base.decode_segment(20)]
    row = 2
    tag = free[row][6:9]  # a 3-token "tag" the model emits at steps 6..8
    decoy = tag[:2] + [(tag[2] + 1) % 256]  # same prefix, different last token
    eng = Engine(model, num_rows=4, max_len=48, sampling=GREEDY, stop_sequences=[decoy, tag])
    eng.start(PROMPTS)
    segs = eng.decode_segment(20)
    for r in range(4):
        hits = [(_first_match(free[r], s), k) for k, s in enumerate([decoy, tag])]
        hits = [h for h in hits if h[0] is not None]
        if hits:
            end, k = min(hits)
            assert segs[r].tokens == free[r][: end + 1]
            assert segs[r].stop_reason == STOP and segs[r].stop_index == k
        else:
            assert segs[r].tokens == free[r] and segs[r].stop_reason == BUDGET
    assert segs[row].stop_reason == STOP and segs[row].tokens[-3:] == tag
    assert len(segs[row].tokens) <= 9
    assert eng.lengths()[row] == len(PROMPTS[row]) + len(segs[row].tokens)


def test_eos_length_and_budget(model):
    base = Engine(model, num_rows=4, max_len=48, sampling=GREEDY)
    base.start(PROMPTS)
    free = [s.tokens for s in base.decode_segment(8)]
    eos = free[0][4]
    eng = Engine(model, num_rows=4, max_len=16, sampling=GREEDY, eos_ids=[eos])
    eng.start(PROMPTS)
    segs = eng.decode_segment([8, 3, 8, 8])
    assert segs[0].stop_reason == EOS and segs[0].tokens == free[0][: free[0].index(eos) + 1]
    assert segs[1].stop_reason == BUDGET and len(segs[1].tokens) == 3 or segs[1].stop_reason == EOS
    # row 2 has an 11-token prompt: the cache (16) ends after 5 new tokens
    assert segs[2].stop_reason in (LENGTH, EOS)
    if segs[2].stop_reason == LENGTH:
        assert len(segs[2].tokens) == 5 and eng.lengths()[2] == 16
        again = eng.decode_segment(4)
        assert again[2].tokens == [] and again[2].stop_reason == LENGTH


def test_mark_done_and_zero_budget(model):
    eng = Engine(model, num_rows=4, max_len=48, sampling=GREEDY)
    eng.start(PROMPTS[:3])  # row 3 starts done
    eng.mark_done([1])
    segs = eng.decode_segment([4, 4, 0, 4])
    assert segs[1] is None and segs[3] is None
    assert segs[2].tokens == [] and segs[2].stop_reason == BUDGET
    assert len(segs[0].tokens) == 4
    with pytest.raises(ValueError, match="row 1 is done"):
        eng.extend([1], [[3]])


def test_compaction_gives_identical_results(model):
    """Rows finishing early are compacted into smaller row buckets; results do not change."""
    prompts = [[i + 1, 2 * i + 3] for i in range(8)]
    ref = Engine(model, num_rows=8, max_len=40, sampling=SAMPLED, compact=False)
    ref.start(prompts, seed=5)
    budgets = [2, 3, 20, 1, 4, 2, 18, 3]
    want = ref.decode_segment(budgets)
    eng = Engine(model, num_rows=8, max_len=40, sampling=SAMPLED, compact=True, min_rows_bucket=4)
    eng.start(prompts, seed=5)
    got = eng.decode_segment(budgets)
    for a, b in zip(want, got):
        assert a.tokens == b.tokens and a.stop_reason == b.stop_reason
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
    row_buckets = {k[1] for k in eng.compile_keys() if k[0] == "decode"}
    # 8 rows; after 3 steps 3 live -> bucket 4 (the minimum), which runs to the end
    assert row_buckets == {8, 4}


def test_seeded_sampling_reproducible(model):
    eng = Engine(model, num_rows=4, max_len=32, sampling=SamplingParams(temperature=1.0, top_p=0.9))
    outs = []
    for seed in (1, 1, 2):
        eng.start(PROMPTS, seed=seed)
        outs.append([s.tokens for s in eng.decode_segment(10)])
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]
    assert len(eng.compile_keys()) == 2  # one write + one decode executable, reused across starts


def test_compile_count_bounded_over_many_segments(model):
    """A 20-segment multi-turn run with varied lengths compiles a small fixed set of executables."""
    counts = []
    eng = Engine(model, num_rows=4, max_len=512, sampling=SAMPLED, stop_sequences=[[5, 6]])
    for _ in range(2):
        rng = np.random.default_rng(0)
        eng.start(PROMPTS, seed=0)
        for _ in range(20):
            eng.decode_segment(int(rng.integers(1, 9)))
            room = eng.max_len - eng.lengths().max()
            n = int(min(rng.integers(1, 20), room - 9))
            eng.extend(range(4), [list(rng.integers(0, 256, n)) for _ in range(4)])
        counts.append(eng.compile_count)
    assert counts[0] == counts[1]  # the second identical run compiles nothing
    assert len(eng.compile_keys()) <= 8, eng.compile_keys()


def test_errors(model):
    eng = Engine(model, num_rows=2, max_len=8, sampling=GREEDY)
    with pytest.raises(RuntimeError, match="start"):
        eng.decode_segment(1)
    with pytest.raises(ValueError, match=r"outside \[0, 256\)"):
        eng.start([[1, 999]])
    with pytest.raises(ValueError, match="prompts\\[1\\] is empty"):
        eng.start([[1], []])
    eng.start([[1, 2, 3]])
    with pytest.raises(ValueError, match="exceeds max_len 8"):
        eng.extend([0], [[1] * 6])
    with pytest.raises(ValueError, match="out of range"):
        eng.mark_done([2])
    with pytest.raises(ValueError, match="stop_sequences\\[0\\] is empty"):
        Engine(model, num_rows=2, max_len=8, stop_sequences=[[]])


def test_same_outputs_on_1_device_and_2x2x2_mesh():
    cfg = tiny_config("qwen2", num_heads=4, num_kv_heads=2)
    results = []
    for mesh in (single_device_mesh(), make_mesh(2, 2, 2)):
        m = create_model(cfg, mesh=mesh, seed=1)
        eng = Engine(m, num_rows=8, max_len=48, sampling=SAMPLED, mesh=mesh, stop_sequences=[[3, 4]])
        prompts = [PROMPTS[i % 4] + [i] for i in range(8)]
        eng.start(prompts, seed=9)
        first = eng.decode_segment(6)
        eng.extend(range(8), [[i, i + 1, i + 2] for i in range(8)])
        second = eng.decode_segment(8)
        results.append((first, second))
        if mesh.size == 8:
            spec = eng.cache.k[0].sharding.spec
            assert tuple(spec)[:2] == (("data", "fsdp"), "tensor")
    (a1, a2), (b1, b2) = results
    for x, y in zip(a1 + a2, b1 + b2):
        assert x.tokens == y.tokens and x.stop_reason == y.stop_reason
        np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5)
        np.testing.assert_allclose(x.raw_logprobs, y.raw_logprobs, atol=1e-5)
