"""The rl.reward hook (rewards/api.py, registry.py), grounded entity credit, and the example reward."""

import numpy as np
import pytest

from egrpo_jax.agent.trajectory import ANSWERED, FORMAT_ERROR, OVERLENGTH, ToolCallRecord, Trajectory
from egrpo_jax.config import ConfigError
from egrpo_jax.rewards import api
from egrpo_jax.rewards.api import QuestionView, RewardError, RewardSettings, RolloutView, call_reward, credit_rate
from egrpo_jax.rewards.egrpo import egrpo_reward, score_group
from egrpo_jax.rewards.entities import entity_mentions, grounded_entities, match_rate
from egrpo_jax.rewards.examples import token_f1_reward
from egrpo_jax.rewards.registry import resolve_reward

QUESTION = "Who founded the company that makes the Widget?"
ENTITIES = ["Acme Corp", "Jane Doe", "Widget"]
RESPONSE = "Acme Corp makes the Widget. It was founded by Jane Doe."
GUESS = "Maybe Jane Doe founded Acme Corp."


def _traj(thoughts, responses_before, responses=(), answer="Bob", status=ANSWERED):
    calls = [ToolCallRecord("search", {"query": ["q"]}, r, True, 0.0) for r in responses]
    return Trajectory("q", [1, 2], [0, 1], [0.0, -1.0], 1, list(thoughts), calls, answer, status,
                      responses_before=None if responses_before is None else list(responses_before))


# before the search / after a response naming both / before the search but named by the question
GROUP = [_traj([GUESS], [0], [RESPONSE]), _traj([GUESS], [1], [RESPONSE]), _traj(["The Widget, then."], [0])]


def test_grounded_credit_needs_the_question_or_an_earlier_tool_response():
    before, after, in_question = GROUP
    assert grounded_entities([GUESS], [0], QUESTION, [RESPONSE], ENTITIES) == set()  # named before any search
    assert grounded_entities([GUESS], [1], QUESTION, [RESPONSE], ENTITIES) == {0, 1}  # same text after it
    assert grounded_entities(["The Widget, then."], [0], QUESTION, [], ENTITIES) == {2}  # the question names it
    # an entity named early and again after the response that names it is credited (the second thought)
    assert grounded_entities(["Jane Doe?", "So Jane Doe."], [0, 1], QUESTION, [RESPONSE], ENTITIES) == {1}
    q = QuestionView.of(QUESTION, ["Jane Doe"], ENTITIES)
    rates = [credit_rate(RolloutView.of(t), q, "grounded") for t in (before, after, in_question)]
    assert rates == pytest.approx([0.0, 2 / 3, 1 / 3])


def test_grounded_egrpo_rewards_hand_computed():
    grounded = score_group(GROUP, ["Jane Doe"], ENTITIES, 0.3, credit="grounded", question=QUESTION)
    # all wrong; gamma 0, 2/3, 1/3 -> 0.3 * gamma / (2/3)
    np.testing.assert_allclose(grounded.rewards, [0.0, 0.3, 0.15])
    np.testing.assert_allclose(grounded.match_rates, [0.0, 2 / 3, 1 / 3])
    thought = score_group(GROUP, ["Jane Doe"], ENTITIES, 0.3, question=QUESTION)  # the paper's: order ignored
    np.testing.assert_allclose(thought.rewards, [0.3, 0.3, 0.15])
    np.testing.assert_allclose(thought.match_rates, [match_rate(t.thoughts, ENTITIES) for t in GROUP])


def test_thought_credit_needs_no_order_and_grounded_says_it_is_missing():
    unordered = _traj([GUESS], None, [RESPONSE])
    q = QuestionView.of(QUESTION, ["Jane Doe"], ENTITIES)
    assert credit_rate(RolloutView.of(unordered), q, "thought") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="responses_before"):
        credit_rate(RolloutView.of(unordered), q, "grounded")
    with pytest.raises(ValueError, match="rl.entity_credit must be one of"):
        credit_rate(RolloutView.of(unordered), q, "earned")
    with pytest.raises(ValueError, match="2 thoughts but 1"):
        _traj([GUESS, GUESS], [0])
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        grounded_entities([GUESS], [2], QUESTION, [RESPONSE], ENTITIES)


def test_entity_mentions_count_per_thought():
    assert entity_mentions([GUESS, "Jane Doe again", "nothing"], ENTITIES) == 3


def test_a_custom_reward_sees_each_rollouts_view_and_the_question():
    seen = []

    def reward(rollouts, question, settings):
        seen.append((rollouts, question, settings))
        return [float(len(r.tool_responses)) for r in rollouts]

    trajs = [*GROUP, _traj([], [], answer=None, status=OVERLENGTH)]
    s = score_group(trajs, ["Jane Doe", "J. Doe"], ["Acme Corp", ["Jane Doe", "J. Doe"]], 0.1, strict=True,
                    credit="grounded", question=QUESTION, reward=reward, step=7)
    np.testing.assert_array_equal(s.rewards, [1.0, 1.0, 0.0, 0.0])
    ((rollouts, question, settings),) = seen
    assert rollouts[1] == RolloutView("Bob", (GUESS,), (RESPONSE,), (1,), ANSWERED)
    assert rollouts[3].is_error and not rollouts[0].is_error
    assert question == QuestionView(QUESTION, ("Jane Doe", "J. Doe"), (("Acme Corp",), ("Jane Doe", "J. Doe")))
    assert settings == RewardSettings(alpha=0.1, entity_credit="grounded", strict_match=True, step=7)
    assert s.rollouts == rollouts and s.question == question
    # the metric facts are the run's, whatever the reward: exact match, credit under the run's rule
    np.testing.assert_array_equal(s.correct, [False, False, False, False])
    np.testing.assert_array_equal(s.errors, [False, False, False, True])


def test_answered_is_the_agents_status_name():
    assert api.ANSWERED == ANSWERED


def _reward(out):
    return lambda rollouts, question, settings: out


@pytest.mark.parametrize("out,message", [
    ([1.0], r"returned shape \(1,\) for a group of 2 rollouts: must be one float per rollout"),
    ([1.0, float("nan")], r"returned nan for rollout 1: rewards must be finite"),
    ([1.0, "x"], r"returned list \"\[1.0, 'x'\]\": must be one float per rollout"),
    (None, r"returned shape \(\) for a group of 2"),
])
def test_a_bad_reward_is_one_line_naming_the_function(out, message):
    views = [RolloutView.of(t) for t in GROUP[:2]]
    q = QuestionView.of(QUESTION, ["x"], ENTITIES)
    with pytest.raises(RewardError, match=r"reward test_reward_hook:_reward.<locals>.<lambda> " + message):
        call_reward(_reward(out), views, q, RewardSettings(0.3))


def test_a_reward_that_raises_is_one_line_naming_it():
    def broken(rollouts, question, settings):
        raise KeyError("gold")

    with pytest.raises(RewardError) as e:
        score_group(GROUP, ["x"], ENTITIES, 0.3, reward=broken)
    assert str(e.value) == ("reward test_reward_hook:test_a_reward_that_raises_is_one_line_naming_it.<locals>.broken "
                            "raised KeyError: gold")


def test_the_paper_reward_goes_through_the_hook():
    assert resolve_reward("egrpo") is egrpo_reward
    views = [RolloutView.of(t) for t in GROUP]
    q = QuestionView.of(QUESTION, ["Jane Doe"], ENTITIES)
    np.testing.assert_allclose(egrpo_reward(views, q, RewardSettings(0.3, "grounded")), [0.0, 0.3, 0.15])


def test_token_f1_example_hand_computed():
    fn = resolve_reward("egrpo_jax.rewards.examples:token_f1_reward")
    assert fn is token_f1_reward
    trajs = [_traj([], [], answer=a, status=st) for a, st in
             [("Jane Doe", ANSWERED), ("Doe", ANSWERED), ("Jane Doe", FORMAT_ERROR), ("Bob", ANSWERED)]]
    s = score_group(trajs, ["Jane Doe"], ENTITIES, 0.3, reward=fn)
    # exact 1; "Doe": precision 1, recall 1/2 -> F1 2/3; an error 0 even when right; no overlap 0
    np.testing.assert_allclose(s.rewards, [1.0, 2 / 3, 0.0, 0.0])
    np.testing.assert_array_equal(s.correct, [True, False, False, False])


@pytest.mark.parametrize("spec,message", [
    ("no_such_module_xyz:f", r"cannot import no_such_module_xyz \(ModuleNotFoundError: No module named"),
    ("egrpo_jax.rewards.examples:nope", r"module egrpo_jax.rewards.examples \(.*examples.py\) has no nope"),
    ("egrpo_jax.rewards.examples:__doc__", r"egrpo_jax.rewards.examples.__doc__ is a str, not a function"),
    ("egrpo_jax.rewards.answer:normalize_answer", r"normalize_answer\(text: 'str'\) -> 'str' must take "
                                                  r"\(rollouts, question, settings\)"),
    ("grpo", r"must be one of \['egrpo'\] or 'module:function'"),
    ("a.b:c.d", r"must be one of \['egrpo'\] or 'module:function'"),
])
def test_bad_reward_specs_are_one_config_error_line(spec, message):
    with pytest.raises(ConfigError, match=r"^config key rl.reward = '" + spec.replace(".", r"\.") + "': " + message):
        resolve_reward(spec)


def test_a_module_that_fails_on_import_is_named(tmp_path, monkeypatch):
    (tmp_path / "egrpo_broken_reward.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"cannot import egrpo_broken_reward \(RuntimeError: no GPU here\)$"):
        resolve_reward("egrpo_broken_reward:f")
