import json

import pytest

from egrpo_jax.data.pipeline import QuestionStream
from egrpo_jax.data.schema import Entity, QARecord

RECS = [QARecord(f"q{i}", "?", "a", (), (Entity("e"),)) for i in range(20)]


def ids(batch):
    return [r.id for r in batch]


def test_epochs_cover_every_question_once_per_epoch():
    s = QuestionStream(RECS, batch_size=4, seed=3, num_epochs=2)
    batches = [ids(b) for b in s]
    assert len(batches) == len(s) == 10 and all(len(b) == 4 for b in batches)
    first, second = sum(batches[:5], []), sum(batches[5:], [])
    assert sorted(first) == sorted(second) == sorted(r.id for r in RECS)
    assert first != second  # reshuffled each epoch
    assert first != [r.id for r in RECS]


def test_seed_determinism_and_difference():
    a = [ids(b) for b in QuestionStream(RECS, 5, seed=1, num_epochs=1)]
    assert a == [ids(b) for b in QuestionStream(RECS, 5, seed=1, num_epochs=1)]
    assert a != [ids(b) for b in QuestionStream(RECS, 5, seed=2, num_epochs=1)]


def test_shards_partition_the_data():
    got = []
    for i in range(3):
        s = QuestionStream(RECS, 2, seed=0, num_epochs=1, shard_index=i, shard_count=3, drop_remainder=False)
        got.append(sum((ids(b) for b in s), []))
    assert sorted(sum(got, [])) == sorted(r.id for r in RECS)
    assert not set(got[0]) & set(got[1])
    assert sorted(got[1]) == sorted(f"q{i}" for i in range(1, 20, 3))


def test_resume_gives_same_next_batches():
    s = QuestionStream(RECS, 3, seed=7)  # infinite
    for _ in range(9):  # cross an epoch boundary
        next(s)
    state = json.loads(json.dumps(s.get_state()))
    expected = [ids(next(s)) for _ in range(4)]
    fresh = QuestionStream(RECS, 3, seed=7)
    fresh.set_state(state)
    assert [ids(next(fresh)) for _ in range(4)] == expected


def test_state_mismatch_and_bad_args():
    state = QuestionStream(RECS, 3, seed=7).get_state()
    with pytest.raises(ValueError, match="data state key 'seed'"):
        QuestionStream(RECS, 3, seed=8).set_state(state)
    with pytest.raises(ValueError, match="data state key 'fingerprint'"):
        QuestionStream(RECS[:-1], 3, seed=7).set_state(state)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        QuestionStream(RECS, 8, seed=0, shard_index=2, shard_count=3)
    with pytest.raises(ValueError, match="shard_index"):
        QuestionStream(RECS, 1, seed=0, shard_index=3, shard_count=3)
