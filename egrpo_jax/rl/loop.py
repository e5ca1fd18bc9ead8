"""The E-GRPO / GRPO loop (`egrpo train`): questions -> G agent rollouts each -> rewards ->
one on-policy update -> metrics -> checkpoint.

The sampling engine holds the same NNX model object as the learner; the learner points the
model's variables at the new parameters after every update (no copy) and the engine snapshots
them at the start of each rollout batch, so rollouts always use the current policy.

Per step: rewards come from the rl.reward hook (rewards.registry; E-GRPO, PAPER.md, by default);
advantages subtract the group mean over all G rollouts (errors and overlength included) and are
scaled by rl.advantage_norm (rl.advantages); overlength rollouts are left out of the loss; with
rl.dynamic_sampling, groups whose G rewards are identical are dropped and more questions are
rolled out until the batch is full again (DAPO).
A step with no signal (no trained token with a non-zero advantage) makes no update (counted).
Every step also logs its group composition and the reward-hacking watch (rl.watch).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from egrpo_jax.agent.loop import run_rollouts
from egrpo_jax.agent.trajectory import OVERLENGTH, Trajectory
from egrpo_jax.assembly import agent_config, build_engine, build_mesh, build_policy, build_tools, sampling_params
from egrpo_jax.data.io import load_questions
from egrpo_jax.data.pipeline import QuestionStream
from egrpo_jax.rewards.api import RewardFn
from egrpo_jax.rewards.egrpo import GroupScore, alpha_schedule, score_group
from egrpo_jax.rewards.registry import resolve_reward
from egrpo_jax.rl.advantages import group_advantages, informative_groups
from egrpo_jax.rl.batch import pack_trajectories
from egrpo_jax.rl.learner import Learner
from egrpo_jax.rl.offpolicy import OffPolicySteps
from egrpo_jax.rl.run import open_checkpoints, run_steps
from egrpo_jax.rl.setup import loss_settings, optim_settings
from egrpo_jax.rl.watch import group_composition, hacking_watch
from egrpo_jax.tools.health import FailureWatch, check_search

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Rollouts:
    """One step's rollouts and scores: those kept for the update and every one sampled."""

    trajs: list[Trajectory]
    scores: list[GroupScore]
    all_trajs: list[Trajectory]
    all_scores: list[GroupScore]
    agent_metrics: dict[str, float]
    rounds: int
    seconds: float


@dataclasses.dataclass
class StepResult:
    trajectories: list[Trajectory]
    scores: list[GroupScore]
    advantages: np.ndarray
    include: np.ndarray  # rollouts in the loss
    metrics: dict[str, float]


def rollout_metrics(trajs: Sequence[Trajectory], scores: Sequence[GroupScore]) -> dict[str, float]:
    """Reward, accuracy, entity match of correct vs wrong rollouts, tool use, errors, lengths."""
    rewards = np.concatenate([s.rewards for s in scores])
    correct = np.concatenate([s.correct for s in scores])
    errors = np.concatenate([s.errors for s in scores])
    rates = np.concatenate([s.match_rates for s in scores])
    wrong = ~correct & ~errors

    def mean(x, sel=None):
        x = np.asarray(x, np.float64)
        x = x if sel is None else x[sel]
        return float(x.mean()) if x.size else float("nan")

    return {
        "reward/mean": mean(rewards), "reward/std": float(rewards.std()),
        "accuracy": mean(correct),
        "entity_match/all": mean(rates), "entity_match/correct": mean(rates, correct),
        "entity_match/wrong": mean(rates, wrong),
        "tool_calls/per_rollout": mean([t.num_tool_calls for t in trajs]),
        "errors/format": mean([t.status == "format_error" for t in trajs]),
        "errors/overlength": mean([t.status == OVERLENGTH for t in trajs]),
        "response/model_tokens": mean([t.num_model_tokens for t in trajs]),
        "response/total_tokens": mean([len(t.tokens) for t in trajs]),
    }


class RLTrainer:
    """One object per run; `step(questions, step)` does rollouts + update and returns StepResult."""

    def __init__(self, cfg, model, tokenizer, tools, mesh, *, engine=None, reward: RewardFn | None = None):
        """`reward`: rl.reward's function when the caller resolved it already (run_train, before the model)."""
        self.cfg, self.model, self.tokenizer, self.tools, self.mesh = cfg, model, tokenizer, tools, mesh
        self.group = cfg.rl.group_size
        self.agent_cfg = agent_config(cfg)
        self.learner = Learner(model, mesh, optim_settings(cfg), loss_settings(cfg, "rl"),
                               microbatches=cfg.optim.microbatches)
        self.alpha = alpha_schedule(cfg.rl.alpha_schedule, cfg.rl.alpha, cfg.rl.alpha_final, cfg.rl.alpha_decay_steps)
        self.pad_id = int(tokenizer.pad_id)
        slots = cfg.agent.slots or cfg.data.batch_size * self.group  # rollouts stream through fewer rows
        self.engine = engine or build_engine(model, tokenizer, num_rows=slots,
                                             max_len=cfg.agent.max_total_tokens, sampling=sampling_params(cfg),
                                             mesh=mesh)
        self.empty_steps = 0
        self.reward = resolve_reward(cfg.rl.reward) if reward is None else reward

    def _rollout_round(self, questions: Sequence, step: int, seed: int, params=None):
        cfg, G = self.cfg, self.group
        trajs, agent_m = run_rollouts(self.engine, self.tokenizer, questions, self.tools,
                                      dataclasses.replace(self.agent_cfg, seed=seed), params=params)
        alpha = self.alpha(step - 1)
        scores = [
            score_group(trajs[i * G:(i + 1) * G], q.answers, q.entities, alpha, strict=cfg.rl.strict_match,
                        credit=cfg.rl.entity_credit, question=q.question, reward=self.reward, step=step)
            for i, q in enumerate(questions)
        ]
        return trajs, scores, agent_m

    def step(self, questions: Sequence, step: int, seed: int, more: Callable[[], Sequence] | None = None) -> StepResult:
        """Rollouts of `questions` (G each), rewards, advantages, one update."""
        return self.update(self.rollouts(questions, step, seed, more), step)

    def rollouts(self, questions: Sequence, step: int, seed: int, more: Callable[[], Sequence] | None = None, *,
                 params=None) -> Rollouts:
        """Rollouts of `questions` (G each) and their rewards, from the model's current parameters
        or from `params` (a snapshot of an earlier policy: off-policy rollouts).

        With rl.dynamic_sampling, groups whose G rewards are identical are dropped and `more()`
        supplies further question batches (up to rl.dynamic_max_rounds extra rounds, each with its
        own seed) until the batch holds data.batch_size informative groups, as DAPO does. Metrics
        about the policy (reward, accuracy, ...) are over every rollout sampled in the step.
        """
        cfg, G, B = self.cfg, self.group, self.cfg.data.batch_size
        t0 = time.perf_counter()
        trajs, scores, agent_m = self._rollout_round(questions, step, seed, params)
        all_trajs, all_scores = list(trajs), list(scores)
        rounds = 1
        if cfg.rl.dynamic_sampling:
            keep = [i for i, s in enumerate(scores) if _informative(s)]
            kept_t = [t for i in keep for t in trajs[i * G:(i + 1) * G]]
            kept_s = [scores[i] for i in keep]
            while len(kept_s) < B and rounds <= cfg.rl.dynamic_max_rounds and more is not None:
                extra_q = more()
                t_extra, s_extra, _ = self._rollout_round(extra_q, step, seed + 7919 * rounds)
                rounds += 1
                all_trajs += t_extra
                all_scores += s_extra
                for i, s in enumerate(s_extra):
                    if _informative(s) and len(kept_s) < B:
                        kept_t += t_extra[i * G:(i + 1) * G]
                        kept_s.append(s)
            trajs, scores = kept_t, kept_s
        return Rollouts(trajs, scores, all_trajs, all_scores, agent_m, rounds, time.perf_counter() - t0)

    def update(self, ro: Rollouts, step: int, *, staleness: int = 0) -> StepResult:
        """Rewards -> advantages -> one update on rollouts drawn `staleness` updates ago."""
        cfg, G = self.cfg, self.group
        trajs, scores, all_trajs, all_scores, agent_m, rounds, t_roll = (
            ro.trajs, ro.scores, ro.all_trajs, ro.all_scores, ro.agent_metrics, ro.rounds, ro.seconds)
        metrics = rollout_metrics(all_trajs, all_scores)
        metrics.update(group_composition(all_scores))
        metrics.update(hacking_watch(all_scores, self._think_tokens(all_scores), cfg.rl.strict_match))
        metrics["offpolicy/staleness"] = float(staleness)
        metrics.update({f"agent/{k}": v for k, v in agent_m.items()})
        metrics.update({"dynamic/rounds": float(rounds), "dynamic/groups_kept": float(len(scores)),
                        "groups/informative": float(np.mean([_informative(s) for s in all_scores]))})
        if not scores:  # dynamic sampling found no informative group at all
            self.empty_steps += 1
            metrics.update({"skipped": 1.0, "trained_tokens": 0.0, "time/rollout_s": t_roll,
                            "train/empty_steps": float(self.empty_steps), "alpha": self.alpha(step - 1)})
            return StepResult([], [], np.zeros(0, np.float32), np.zeros(0, bool), metrics)
        rewards = np.concatenate([s.rewards for s in scores])
        adv = group_advantages(rewards, G, cfg.rl.advantage_norm)
        include = np.array([t.status != OVERLENGTH for t in trajs])
        metrics.update({
            "alpha": self.alpha(step - 1), "advantage/mean": float(adv.mean()), "advantage/std": float(adv.std()),
            "advantage/max_abs": float(np.abs(adv).max()), "rollouts/in_loss": float(include.mean()),
            "time/rollout_s": t_roll,
        })
        t1 = time.perf_counter()
        batch = pack_trajectories(trajs, adv, include, row_multiple=self.learner.row_multiple(),
                                  max_len=cfg.agent.max_total_tokens, pad_id=self.pad_id)
        if _has_signal(batch, cfg.rl.beta):
            train_m = self.learner.train_step(batch, cfg.rl.aggregation, float(cfg.rl.dr_grpo_norm or 1))
        else:
            # nothing to learn (every advantage 0, no KL term): no update at all, so Adam's
            # momentum does not move the policy on a step without signal
            self.empty_steps += 1
            train_m = {"skipped": 1.0, "trained_tokens": 0.0}
        t_train = time.perf_counter() - t1
        metrics.update(train_m)
        metrics.update({
            "time/train_s": t_train, "train/empty_steps": float(self.empty_steps),
            "train/skipped_total": float(self.learner.state.skipped),
            "tokens_per_s/train": float(batch.tokens.size) / max(t_train, 1e-9),
            "train/pad_fraction": 1.0 - sum(len(t.tokens) for t in trajs) / batch.tokens.size,
            "tokens_per_s/rollout": float(sum(t.num_model_tokens for t in all_trajs)) / max(t_roll, 1e-9),
            "train/shapes_compiled": float(len(self.learner.compiled_shapes)),
        })
        return StepResult(trajs, scores, adv, include, metrics)

    def _think_tokens(self, scores: Sequence[GroupScore]) -> list[int]:
        """Each rollout's thought tokens (its <think> texts re-encoded by the run's tokenizer)."""
        rollouts = [r for s in scores for r in s.rollouts]
        ids = self.tokenizer.encode_batch([t for r in rollouts for t in r.thoughts])
        ends = np.cumsum([0] + [len(r.thoughts) for r in rollouts])
        return [sum(len(x) for x in ids[a:b]) for a, b in zip(ends[:-1], ends[1:])]


def _informative(score: GroupScore) -> bool:
    return bool(informative_groups(score.rewards, len(score.rewards))[0])


def _has_signal(batch, beta: float) -> bool:
    """Some trained token has a non-zero advantage (or the KL term gives every trained token a gradient)."""
    trained = batch.mask.sum(axis=1) > 0
    return bool(trained.any() and (beta > 0 or np.any(batch.advantages[trained] != 0)))


def run_train(cfg, *, model=None, tokenizer=None, tools=None, records=None, mesh=None, engine=None) -> dict[str, float]:
    """The `egrpo train` loop. Pieces may be injected (tests, the demo pipeline); the rest is built
    from `cfg` (assembly). Returns the last step's metrics plus train/zero_variance_steps."""
    reward = resolve_reward(cfg.rl.reward)  # a user's module that does not import fails now, not after the model
    ckpt = open_checkpoints(cfg)
    own_tools = tools is None
    try:
        mesh = mesh or build_mesh(cfg)
        if model is None:
            model, tok = build_policy(cfg, mesh, init_from=cfg.checkpoint.init_from)
            tokenizer = tokenizer or tok
        records = load_questions(cfg.data.questions) if records is None else records
        if own_tools:
            tools = build_tools(cfg, tokenizer)
        check_search(tools)  # one query: a dead backend fails the run now, in one line
        trainer = RLTrainer(cfg, model, tokenizer, tools, mesh, engine=engine, reward=reward)
    except BaseException:
        if ckpt is not None:
            ckpt.close()
        if own_tools and tools is not None:
            tools.close()
        raise
    stream = QuestionStream(records, cfg.data.batch_size, seed=cfg.data.seed)
    watch = FailureWatch.from_config(cfg)
    flat = ZeroVarianceWatch()

    def step(n: int, rng) -> dict[str, float]:
        questions = next(stream)
        seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
        t0 = time.perf_counter()
        res = trainer.step(questions, n, seed, more=lambda: next(stream))
        return dict(res.metrics, **{"time/step_s": time.perf_counter() - t0})

    ahead = None
    if cfg.rl.off_policy_steps:
        ahead = OffPolicySteps(trainer, stream, cfg.train.steps)
        step, stream = ahead.step, ahead.stream

    def after(n: int, metrics: dict[str, float]) -> None:
        watch.update(n, metrics)  # warns; raises SearchOutage after too many failing steps in a row
        flat.update(metrics)

    try:
        last = run_steps(cfg, ckpt, trainer.learner, stream, step, policy=(model, tokenizer),
                         log_dir=cfg.logging.dir, desc="train", after_step=after, shown=PROGRESS)
    finally:
        if ahead is not None:
            ahead.close()
        if own_tools:
            tools.close()
    flat.report()
    return dict(last, **{"train/zero_variance_steps": float(flat.flat)}) if last else last


# The progress bar's fields: label -> metric key.
PROGRESS = {"reward": "reward/mean", "acc": "accuracy", "entity_match": "entity_match/all",
            "tool_calls": "tool_calls/per_rollout", "loss": "loss", "failed_calls": "agent/tool_calls/failed",
            "all_wrong": "groups/all_wrong"}


class ZeroVarianceWatch:
    """Counts steps on which no group had two different rewards (GRPO's advantage is then 0 for every
    rollout: no update); a run where that held on every step says so, since it learned nothing."""

    def __init__(self) -> None:
        self.steps = self.flat = 0

    def update(self, metrics: dict[str, float]) -> None:
        self.steps += 1
        self.flat += int(metrics.get("groups/informative", 0.0) == 0.0)

    def report(self) -> None:
        if self.steps and self.flat == self.steps:
            log.warning("train: all %d steps had zero reward variance (every rollout of every group scored "
                        "the same), so no step updated the policy; see errors/format and errors/overlength in "
                        "the metrics, and train a stronger SFT start first", self.steps)
