"""The RL loop end to end: real engine + agent loop + BM25 tools + rewards + update + checkpoint."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from egrpo_jax.testing.scripted import ACTION_ANSWER as ANSWER
from egrpo_jax.testing.scripted import ACTION_CALL as CALL
from egrpo_jax.testing.scripted import ActionTokenizer
from egrpo_jax.agent.trajectory import ANSWERED
from egrpo_jax.assembly import sampling_params
from egrpo_jax.config import load_config
from egrpo_jax.data.io import write_corpus, write_questions
from egrpo_jax.data.schema import Document, Entity, QARecord
from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.metrics_log import read_metrics
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.sharding import create_model
from egrpo_jax.rewards.answer import answer_correct
from egrpo_jax.rewards.entities import match_rate
from egrpo_jax.rl.loop import run_train
from egrpo_jax.sampling.engine import Engine


def _biased_model(mesh):
    """A random policy over well-formed actions: P(call) ~ 0.52, P(answer) ~ 0.48."""
    model = create_model(tiny_config("qwen2", vocab_size=259, num_layers=1), mesh=mesh, seed=0)

    def put(var, new):
        var.set_value(jax.device_put(new, var.get_value().sharding))

    put(model.embed, model.embed.get_value().at[:, 0].set(100.0))
    put(model.norm.scale, jnp.zeros_like(model.norm.scale.get_value()).at[0].set(1.0))
    head = jnp.zeros_like(model.lm_head.get_value()).at[0, :].set(-10.0)
    put(model.lm_head, head.at[0, CALL].set(1.0).at[0, ANSWER].set(0.9))
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rl")
    write_corpus(tmp / "corpus.jsonl", [Document("d1", "Paris", "Paris is the capital of France."),
                                        Document("d2", "Rome", "Rome is the capital of Italy.")])
    qs = [QARecord("q1", "Capital of France?", "Paris", (), (Entity("found"), Entity("look"))),
          QARecord("q2", "Capital of Italy?", "Rome", ("Roma",), (Entity("found"), Entity("look")))]
    write_questions(tmp / "q.jsonl", qs)
    cfg = load_config(None, [
        f"data.questions={tmp}/q.jsonl", f"data.corpus={tmp}/corpus.jsonl", "data.batch_size=2",
        "rl.group_size=4", "rl.alpha=0.3", "rl.dynamic_sampling=true", "search.topk=1", "search.snippet_chars=20",
        "agent.prompt_style=short", "agent.max_total_tokens=1024", "agent.max_tool_calls=3",
        "optim.lr=1e-3", "train.steps=2", f"checkpoint.dir={tmp}/ckpt", "checkpoint.every=1",
        f"logging.dir={tmp}/logs", "logging.progress=false", "sampling.temperature=1.0",
    ])
    mesh = single_device_mesh()
    model, tok = _biased_model(mesh), ActionTokenizer()
    engine = Engine(model, num_rows=8, max_len=1024, sampling=sampling_params(cfg), mesh=mesh,
                    stop_sequences=[[CALL], [ANSWER]], eos_ids=tok.eos_ids)
    before = {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    captured = []
    import egrpo_jax.rl.loop as loop_mod

    original_step = loop_mod.RLTrainer.step

    def spy(self, questions, step, seed, more=None):
        res = original_step(self, questions, step, seed, more)
        # the model the engine reads IS the learner's current params (updated in place, no copy)
        for (_, a), b in zip(nnx.to_flat_state(nnx.state(self.model, nnx.Param)),
                             jax.tree.leaves(self.learner.state.params)):
            assert a.get_value() is b
        captured.append((questions, res))
        return res

    loop_mod.RLTrainer.step = spy
    try:
        last = run_train(cfg, model=model, tokenizer=tok, mesh=mesh, engine=engine)
    finally:
        loop_mod.RLTrainer.step = original_step
    return tmp, cfg, model, before, captured, last


def test_rewards_and_advantages_follow_the_paper(run):
    _, cfg, _, _, captured, _ = run
    assert len(captured) == 2
    for questions, res in captured:
        assert len(res.trajectories) == 8
        for i, q in enumerate(questions):
            group = res.trajectories[4 * i: 4 * i + 4]
            gamma = [match_rate(t.thoughts, q.entities) for t in group]
            ok = [t.status == ANSWERED for t in group]
            gmax = max([g for g, o in zip(gamma, ok) if o], default=0.0)
            for t, g, o, r in zip(group, gamma, ok, res.scores[i].rewards):
                if not o:
                    expected = 0.0
                elif answer_correct(t.answer, q.answers):
                    expected = 1.0
                else:
                    expected = 0.3 * g / gmax if gmax > 0 else 0.0
                assert r == pytest.approx(expected)
            rewards = res.scores[i].rewards
            adv = res.advantages[4 * i: 4 * i + 4]
            if np.ptp(rewards) == 0:
                assert np.all(adv == 0) and not res.include[4 * i: 4 * i + 4].any()  # dynamic sampling
            else:
                np.testing.assert_allclose(adv, (rewards - rewards.mean()) / (rewards.std() + 1e-6), rtol=1e-4)


def test_loop_logs_checkpoints_and_updates(run):
    tmp, _, model, before, captured, last = run
    rows = read_metrics(str(tmp / "logs"))
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward/mean", "accuracy", "entity_match/correct", "tool_calls/per_rollout", "errors/format",
                "response/model_tokens", "clip_low", "clip_high", "kl_sampler", "grad_norm", "tokens_per_s/train",
                "time/rollout_s", "time/train_s", "loss", "entropy", "advantage/std"):
        assert key in rows[-1], key
    from egrpo_jax.eval.analysis import DEFAULT_PANELS

    for keys in DEFAULT_PANELS.values():  # the training-curve plots read what the loop logs
        assert all(k in rows[-1] for k in keys), keys
    assert sorted(int(p.name) for p in (tmp / "ckpt").iterdir() if p.name.isdigit()) == [1, 2]
    meta = json.loads((tmp / "ckpt" / "2" / "meta" / "metadata").read_text()) \
        if (tmp / "ckpt" / "2" / "meta" / "metadata").exists() else None
    assert meta is None or meta["step"] == 2
    trained = any(r["rollouts/in_loss"] > 0 for _, r in [(q, res.metrics) for q, res in captured])
    after = {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    changed = any(not np.array_equal(before[k], after[k]) for k in before)
    assert changed == trained
    assert trained  # with these seeds at least one group is informative
    # on-policy: sampler and learner log-probs agree, so no token is clipped on the first update
    first = captured[0][1].metrics
    assert first["clip_low"] == 0.0 and first["clip_high"] == 0.0 and abs(first["kl_sampler"]) < 1e-4


def _trainer(tmp_path, overrides):
    from egrpo_jax.rl.loop import RLTrainer
    from egrpo_jax.tools.bm25 import Bm25Index
    from egrpo_jax.tools.registry import ToolConfig, ToolSet

    cfg = load_config(None, [
        "data.batch_size=2", "rl.group_size=4", "agent.prompt_style=short", "agent.max_total_tokens=1024",
        "agent.max_tool_calls=3", "optim.lr=1e-2", "train.steps=4", "logging.progress=false",
        "sampling.temperature=1.0", *overrides,
    ])
    mesh = single_device_mesh()
    model, tok = _biased_model(mesh), ActionTokenizer()
    engine = Engine(model, num_rows=8, max_len=1024, sampling=sampling_params(cfg), mesh=mesh,
                    stop_sequences=[[CALL], [ANSWER]], eos_ids=tok.eos_ids)
    index = Bm25Index.build([Document("d1", "Paris", "Paris is the capital of France.")])
    tools = ToolSet(index, ToolConfig(topk=1, snippet_chars=20))
    return RLTrainer(cfg, model, tok, tools, mesh, engine=engine), tools


# The scripted policy always answers "Paris": a Mars question is wrong in every rollout (no signal),
# a France question is right except for rollouts that break the format (signal, with these seeds).
MARS = [QARecord(f"m{i}", "Capital of Mars?", "Olympus", (), (Entity("nothing"),)) for i in range(2)]
FRANCE = [QARecord(f"f{i}", "Capital of France?", "Paris", (), (Entity("found"),)) for i in range(2)]


def test_zero_signal_step_makes_no_update(tmp_path):
    trainer, tools = _trainer(tmp_path, ["rl.alpha=0"])
    first = trainer.step(FRANCE, 1, seed=0)  # a real update: Adam's moments are now non-zero
    assert first.metrics["skipped"] == 0.0
    before = jax.tree.map(np.asarray, trainer.learner.state)
    res = trainer.step(MARS, 2, seed=0)
    tools.close()
    assert res.metrics["skipped"] == 1.0 and res.metrics["train/empty_steps"] == 1.0
    assert np.all(res.advantages == 0)
    after = jax.tree.map(np.asarray, trainer.learner.state)
    # params, Adam moments and the step counter are bit-identical: no momentum step either
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(a, b)


def test_dynamic_sampling_refills_the_batch_with_informative_groups(tmp_path):
    trainer, tools = _trainer(tmp_path, ["rl.alpha=0", "rl.dynamic_sampling=true", "rl.dynamic_max_rounds=3"])
    feed = iter([FRANCE, FRANCE, FRANCE])
    res = trainer.step(MARS, 1, seed=0, more=lambda: next(feed))
    m = res.metrics
    assert m["dynamic/rounds"] >= 2  # the Mars round alone had no informative group
    assert m["dynamic/groups_kept"] == 2 and len(res.scores) == 2
    assert all(np.ptp(s.rewards) > 0 for s in res.scores)
    assert {t.question_id for t in res.trajectories} <= {"f0", "f1"}
    assert m["skipped"] == 0.0 and m["trained_tokens"] > 0
    # policy metrics cover every rollout sampled in the step (the Mars round included)
    assert m["agent/rollouts"] == 8.0 and 0 < m["accuracy"] < 1
    # the cap: only uninformative questions -> 1 + 3 rounds, then a step without update
    feed2 = iter([MARS] * 10)
    res2 = trainer.step(MARS, 2, seed=1, more=lambda: next(feed2))
    tools.close()
    assert res2.metrics["dynamic/rounds"] == 4.0 and res2.metrics["skipped"] == 1.0
    assert res2.metrics["dynamic/groups_kept"] == 0.0


def test_a_run_without_reward_variance_says_so(caplog):
    from egrpo_jax.rl.loop import ZeroVarianceWatch

    with caplog.at_level("WARNING", logger="egrpo_jax.rl.loop"):
        some = ZeroVarianceWatch()
        for informative in (0.0, 0.25, 0.0):
            some.update({"groups/informative": informative})
        some.report()
        assert not caplog.records and some.flat == 2
        flat = ZeroVarianceWatch()
        for _ in range(3):
            flat.update({"groups/informative": 0.0})
        flat.report()
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith("train: all 3 steps had zero reward variance")


SPY = '''
from egrpo_jax.rewards.examples import token_f1_reward

CALLS = []


def reward(rollouts, question, settings):
    out = token_f1_reward(rollouts, question, settings)
    CALLS.append((rollouts, question, settings, out))
    return out
'''


def test_a_user_reward_runs_through_the_hook_in_a_real_run(tmp_path, monkeypatch):
    """rl.reward = module:function on the real path (run_train: engine, agent loop, BM25, update, metrics):
    called once per group with every rollout, its rewards are the ones trained on and logged."""
    import importlib

    (tmp_path / "egrpo_spy_reward.py").write_text(SPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    write_corpus(tmp_path / "corpus.jsonl", [Document("d1", "Paris", "Paris is the capital of France.")])
    write_questions(tmp_path / "q.jsonl", FRANCE + MARS)
    cfg = load_config(None, [
        f"data.questions={tmp_path}/q.jsonl", f"data.corpus={tmp_path}/corpus.jsonl", "data.batch_size=2",
        "rl.group_size=4", "rl.reward=egrpo_spy_reward:reward", "rl.entity_credit=grounded", "search.topk=1",
        "search.snippet_chars=20", "agent.prompt_style=short", "agent.max_total_tokens=1024",
        "agent.max_tool_calls=3", "optim.lr=1e-3", "train.steps=2", f"logging.dir={tmp_path}/logs",
        "logging.progress=false", "sampling.temperature=1.0",
    ])
    mesh = single_device_mesh()
    model, tok = _biased_model(mesh), ActionTokenizer()
    engine = Engine(model, num_rows=8, max_len=1024, sampling=sampling_params(cfg), mesh=mesh,
                    stop_sequences=[[CALL], [ANSWER]], eos_ids=tok.eos_ids)
    run_train(cfg, model=model, tokenizer=tok, mesh=mesh, engine=engine)
    calls = importlib.import_module("egrpo_spy_reward").CALLS
    rows = read_metrics(str(tmp_path / "logs"))
    assert [c[2].step for c in calls] == [1, 1, 2, 2] and all(len(c[0]) == 4 for c in calls)
    assert all(c[2].entity_credit == "grounded" and c[2].alpha == 0.3 for c in calls)
    assert {c[1].text for c in calls} <= {"Capital of France?", "Capital of Mars?"}
    for step, row in zip((1, 2), rows):
        rewards = [r for c in calls if c[2].step == step for r in c[3]]
        assert row["reward/mean"] == pytest.approx(np.mean(rewards))  # the hook's rewards, not E-GRPO's
        for key in ("groups/all_correct", "groups/mixed", "groups/all_wrong", "groups/all_wrong_split",
                    "hacking/think_tokens", "hacking/entities_per_thought", "hacking/unearned_share"):
            assert key in row, key
        assert row["groups/all_correct"] + row["groups/mixed"] + row["groups/all_wrong"] == pytest.approx(1.0)
    assert all(r.responses_before is not None for c in calls for r in c[0])  # the agent loop records the order


def test_a_reward_module_that_does_not_import_fails_before_the_model_is_built(monkeypatch):
    import egrpo_jax.rl.loop as loop_mod

    monkeypatch.setattr(loop_mod, "build_mesh", lambda cfg: pytest.fail("built a mesh before resolving rl.reward"))
    cfg = load_config(None, ["rl.reward=egrpo_no_such_reward_module:reward"])
    with pytest.raises(ValueError, match=r"^config key rl.reward = 'egrpo_no_such_reward_module:reward': cannot "
                                         r"import egrpo_no_such_reward_module \(ModuleNotFoundError"):
        run_train(cfg)
