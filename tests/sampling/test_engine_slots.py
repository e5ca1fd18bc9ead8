"""The engine's row-by-row API: rollouts streamed through fewer rows give the all-at-once tokens."""

import numpy as np
import pytest

from egrpo_jax.mesh import make_mesh, single_device_mesh
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.sampling.api import BUDGET
from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.engine import Engine

GREEDY = SamplingParams(temperature=0.0)
RNG = np.random.default_rng(0)
PROMPTS = [RNG.integers(1, 250, size=int(n)).tolist() for n in RNG.integers(1, 20, size=10)]
BUDGETS = [int(b) for b in RNG.integers(3, 30, size=10)]


@pytest.fixture(scope="module", params=["one_device", "mesh_2x2x2"])
def model(request):
    mesh = single_device_mesh() if request.param == "one_device" else make_mesh(2, 2, 2)
    return create_model(tiny_config("qwen2"), mesh=mesh, seed=0)


def _all_at_once(model):
    eng = Engine(model, num_rows=len(PROMPTS), max_len=64, sampling=GREEDY)
    eng.start(PROMPTS)
    return eng.decode_segment(BUDGETS)


def test_prompts_streamed_through_four_rows_decode_the_same_greedy_tokens(model):
    want = _all_at_once(model)
    eng = Engine(model, num_rows=4, max_len=64, sampling=GREEDY)
    eng.reset()
    queue, got, holder = list(range(len(PROMPTS))), {}, {}

    def fill(rows):
        take = [queue.pop(0) for _ in rows[: len(queue)]]
        rows = rows[: len(take)]
        if take:
            eng.insert(rows, [PROMPTS[j] for j in take], stream_ids=take)
            eng.begin(rows, [BUDGETS[j] for j in take])
            holder.update(zip(rows, take))

    fill([0, 1, 2, 3])
    calls = 0
    while holder:
        ended = eng.decode(max_steps=5)  # a bounded block: rows mid-segment keep their partial output
        calls += 1
        for r, seg in ended.items():
            got[holder.pop(r)] = seg
        eng.mark_done(list(ended))
        fill(sorted(ended))  # a freed row takes the next prompt while the others are mid-segment
    assert calls > len(PROMPTS) // 4  # rows really were refilled between blocks
    for j, seg in enumerate(want):
        assert got[j].tokens == seg.tokens, j
        assert got[j].stop_reason == seg.stop_reason == BUDGET
        np.testing.assert_allclose(got[j].raw_logprobs, seg.raw_logprobs, atol=1e-5)


def test_bounded_blocks_return_only_ended_segments(model):
    eng = Engine(model, num_rows=2, max_len=64, sampling=GREEDY)
    eng.reset()
    eng.insert([0, 1], PROMPTS[:2], stream_ids=[0, 1])
    eng.begin([0, 1], [4, 20])
    first = eng.decode(max_steps=4)
    assert list(first) == [0] and len(first[0].tokens) == 4 and eng.decoding().tolist() == [False, True]
    rest = {}
    while eng.decoding().any():
        rest.update(eng.decode(max_steps=3))
    ref = Engine(model, num_rows=2, max_len=64, sampling=GREEDY)
    ref.start(PROMPTS[:2])
    want = ref.decode_segment([4, 20])
    assert first[0].tokens == want[0].tokens and rest[1].tokens == want[1].tokens and len(want[1].tokens) == 20


def test_a_bounded_block_returns_once_a_quarter_of_its_rows_end(model):
    """Rows ending early come back before max_steps (the host refills them), the rest keep decoding
    from where they were: the tokens are those of one unbounded segment."""
    budgets = [3, 5, 40, 40, 40, 40, 40, 40]
    eng = Engine(model, num_rows=8, max_len=64, sampling=GREEDY)
    eng.reset()
    eng.insert(range(8), PROMPTS[:8], stream_ids=range(8))
    eng.begin(range(8), budgets)
    first = eng.decode(max_steps=30)
    assert sorted(first) == [0, 1] and len(first[1].tokens) == 5  # 2 of 8 rows ended: back after 5 steps
    assert eng.decoding().tolist() == [False, False] + [True] * 6
    assert eng.lengths()[2:].tolist() == [len(p) + 5 for p in PROMPTS[2:8]]  # the others stopped at step 5 too
    got = dict(first)
    while eng.decoding().any():
        got.update(eng.decode(max_steps=30))
    ref = Engine(model, num_rows=8, max_len=64, sampling=GREEDY)
    ref.start(PROMPTS[:8])
    want = ref.decode_segment(budgets)
    assert [got[r].tokens for r in range(8)] == [w.tokens for w in want]
    st = eng.decode_stats  # 40 steps over all 8 rows; 248 of those 320 row-steps wrote a token
    assert st["tokens"] == sum(budgets) and st["steps"] == 40 and st["row_steps"] == 8 * 40


def test_row_state_errors_are_one_line(model):
    eng = Engine(model, num_rows=2, max_len=64, sampling=GREEDY)
    eng.reset()
    eng.insert([0], [PROMPTS[0]], stream_ids=[7])
    with pytest.raises(ValueError, match="insert: row 0 is in use"):
        eng.insert([0], [PROMPTS[1]], stream_ids=[8])
    eng.begin([0], [5])
    with pytest.raises(ValueError, match="begin: row 0 is already decoding"):
        eng.begin([0], [5])
    with pytest.raises(ValueError, match="extend: row 0 is in the middle of a segment"):
        eng.extend([0], [[1, 2]])
    with pytest.raises(ValueError, match="begin: row 1 is done"):
        eng.begin([1], [5])
    with pytest.raises(ValueError, match="decode: max_steps must be >= 0"):
        eng.decode(-1)


def test_a_remat_policy_decodes_like_the_plain_one():
    """model.remat only changes the backward pass: the engine (a cache, no gradient) must run it."""
    import dataclasses

    plain = create_model(tiny_config("qwen2"), mesh=single_device_mesh(), seed=0)
    remat = create_model(dataclasses.replace(tiny_config("qwen2"), remat=True), mesh=single_device_mesh(), seed=0)
    out = []
    for m in (plain, remat):
        eng = Engine(m, num_rows=2, max_len=64, sampling=GREEDY)
        eng.start(PROMPTS[:2])
        out.append([s.tokens for s in eng.decode_segment(12)])
    assert out[0] == out[1]
