import math

import pytest
from eval_fixtures import mention, record, traj

from egrpo_jax.agent.trajectory import FORMAT_ERROR, OVERLENGTH
from egrpo_jax.eval.metrics import RolloutScore, pass_at_k, pass_metrics, score_rollouts, summarize


def comb_reference(n, c, k):
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (3, 1, 1, 1 / 3),
        (3, 1, 3, 1.0),
        (3, 0, 3, 0.0),
        (5, 2, 2, 0.7),
        (10, 3, 5, 1 - 21 / 252),
        (4, 4, 1, 1.0),
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_binomial_reference_and_survives_large_n():
    for n in range(1, 12):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(comb_reference(n, c, k), abs=1e-12)
    assert pass_at_k(2000, 1, 1) == pytest.approx(1 / 2000)


@pytest.mark.parametrize("n,c,k", [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError, match="pass@k"):
        pass_at_k(n, c, k)


def _three_question_set():
    recs = [
        record("q1", "Paris", ["France"]),
        record("q2", "Oslo", ["Norway", "Fjord"]),
        record("q3", "Rome", []),
    ]
    trajs = [
        # q1: samples wrong, right, wrong
        traj("q1", "Lyon", mention(), tools=1, model_tokens=4),
        traj("q1", "paris", mention("France"), tools=2, model_tokens=6),
        traj("q1", "Paris France", mention("France"), tools=3, model_tokens=8),
        # q2: format error, overlength, right
        traj(
            "q2",
            None,
            mention("Norway"),
            status=FORMAT_ERROR,
            format_error="bad_json",
            tools=0,
            model_tokens=2,
        ),
        traj("q2", None, mention("Norway", "Fjord"), status=OVERLENGTH, tools=4, model_tokens=10),
        traj("q2", "The Oslo", mention("Norway"), tools=2, model_tokens=6),
        # q3: right, right, missing-answer format error
        traj("q3", "Rome", mention(), tools=0, model_tokens=3),
        traj("q3", "rome.", mention(), tools=1, model_tokens=3),
        traj("q3", None, mention(), status=FORMAT_ERROR, format_error="no_answer", tools=0, model_tokens=2),
    ]
    return recs, trajs


def test_score_rollouts_fields():
    recs, trajs = _three_question_set()
    scores = score_rollouts(trajs, recs)
    assert [s.sample for s in scores] == [0, 1, 2] * 3
    assert [s.correct for s in scores] == [False, True, False, False, False, True, True, True, False]
    # "Paris France" vs "Paris": precision 1/2, recall 1 -> F1 2/3; wrong by exact match
    assert scores[2].f1 == pytest.approx(2 / 3)
    assert scores[0].f1 == 0.0 and scores[1].f1 == 1.0
    assert scores[3].format_error == "bad_json" and scores[4].format_error is None
    assert [s.entities_matched for s in scores[:6]] == [0, 1, 1, 1, 2, 1]
    assert scores[4].match_rate == 1.0 and scores[5].match_rate == 0.5
    assert scores[6].match_rate is None  # q3 has no entities
    assert scores[1].num_model_tokens == 6 and scores[1].num_tokens == 8  # 6 model + 2 host tokens
    assert RolloutScore.from_json(scores[4].to_json()) == scores[4]


def test_summary_hand_computed():
    recs, trajs = _three_question_set()
    summ = summarize(score_rollouts(trajs, recs))
    assert summ["questions"] == 3 and summ["rollouts"] == 9 and summ["samples_per_question"] == 3
    # per-question correct fractions 1/3, 1/3, 2/3
    assert summ["pass@1"] == pytest.approx((1 / 3 + 1 / 3 + 2 / 3) / 3)
    assert summ["pass@3"] == pytest.approx(1.0)
    assert summ["any@1"] == pytest.approx(1 / 3)  # only q3's first sample is right
    assert summ["any@3"] == pytest.approx(1.0)
    assert summ["accuracy"] == pytest.approx(4 / 9)
    assert summ["f1"] == pytest.approx((0 + 1 + 2 / 3 + 0 + 0 + 1 + 1 + 1 + 0) / 9)
    assert summ["tool_calls/mean"] == pytest.approx(13 / 9)
    assert summ["tokens/mean"] == pytest.approx(44 / 9)
    assert summ["tokens_total/mean"] == pytest.approx((44 + 18) / 9)
    assert summ["format_error_rate"] == pytest.approx(2 / 9)
    assert summ["overlength_rate"] == pytest.approx(1 / 9)
    assert summ["answered_rate"] == pytest.approx(6 / 9)
    assert summ["format_errors"] == {"bad_json": pytest.approx(1 / 9), "no_answer": pytest.approx(1 / 9)}
    # match rates: q1 [0, 1, 1], q2 [.5, 1, .5]; correct: q1#1 (1), q2#2 (.5)
    assert summ["entity_match/correct"] == pytest.approx(0.75)
    assert summ["entity_match/wrong"] == pytest.approx((0 + 1 + 0.5 + 1) / 4)
    assert summ["entity_match/all"] == pytest.approx(4 / 6)
    # wrong match rates 0, 1, .5, 1: three of four wrong rollouts are near-misses (>= 0.5)
    assert summ["near_miss/wrong_rate"] == pytest.approx(0.75)
    # tool calls 1, 2, 3, 0, 4, 2, 0, 1, 0
    assert summ["tool_calls/histogram"] == {"0": pytest.approx(3 / 9), "1": pytest.approx(2 / 9),
                                            "2": pytest.approx(2 / 9), "3": pytest.approx(1 / 9),
                                            "4": pytest.approx(1 / 9)}
    assert summ["tool_calls/std"] == pytest.approx(146 ** 0.5 / 9)


def test_pass_metrics_rejects_k_above_samples_and_unknown_question():
    recs, trajs = _three_question_set()
    scores = score_rollouts(trajs, recs)
    with pytest.raises(ValueError, match=r"pass@4 needs at least 4 samples"):
        pass_metrics(scores, [4])
    with pytest.raises(KeyError, match="unknown question_id 'zz'"):
        score_rollouts([traj("zz", "x", [])], recs)
    with pytest.raises(ValueError, match="no rollouts"):
        summarize([])


def test_strict_matching_is_case_sensitive():
    recs = [record("q", "A", ["Norway"])]
    lower = [traj("q", "A", ["i looked up norway"])]
    assert score_rollouts(lower, recs)[0].entities_matched == 1
    assert score_rollouts(lower, recs, strict=True)[0].entities_matched == 0
