"""The question stream of one-step off-policy training: a checkpoint's position excludes the batch
drawn ahead, so a resumed run rolls that batch out again instead of skipping it."""

from egrpo_jax.data.pipeline import QuestionStream
from egrpo_jax.data.schema import QARecord
from egrpo_jax.rl.offpolicy import LaggedStream

RECORDS = [QARecord(f"q{i}", f"Question {i}?", "a", (), ()) for i in range(10)]


def test_saved_position_is_before_the_batch_drawn_ahead():
    lag = LaggedStream(QuestionStream(RECORDS, 2, seed=3))
    first = next(lag)
    ahead = lag.draw_ahead()  # step 1 trains on `first` while `ahead` is rolled out
    saved = lag.get_state()
    resumed = LaggedStream(QuestionStream(RECORDS, 2, seed=3))
    resumed.set_state(saved)
    assert [r.id for r in next(resumed)] == [r.id for r in ahead]  # not skipped on resume
    lag.taken()  # step 2 trains on `ahead`: the position moves past it
    after = lag.draw_ahead()
    resumed2 = LaggedStream(QuestionStream(RECORDS, 2, seed=3))
    resumed2.set_state(lag.get_state())
    assert [r.id for r in next(resumed2)] == [r.id for r in after] != [r.id for r in first]
