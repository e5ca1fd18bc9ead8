"""The oracle agent and SFT demonstrations for synthetic-world questions.

The oracle knows each question's chain (n0 -r1-> n1 ... -> nh) and walks it with real searches:
search k looks up n_k (by name, or by its description's keywords for a fuzzed n0) and must find,
in the *shown* snippet of n_k's document, the sentence naming n_{k+1}. If that fact is not
visible the question is unanswerable and `Unanswerable` is raised (the test runs the oracle on
every question of the default world to prove none is). Thoughts mention every entity found.

Demo file format (JSONL, one demonstration per line)::

    {"id": "demo-000001", "question_id": "syn0-00012", "question": "...",
     "segments": [{"role": "model", "text": "<think>...</think>\\n<tool_call>{...}</tool_call>"},
                  {"role": "tool",  "text": "\\n<tool_response>\\n...\\n</tool_response>\\n"},
                  ...,
                  {"role": "model", "text": "<think>...</think>\\n<answer>...</answer>"}],
     "correct": true, "kind": "perfect" | "recovered" | "wrong_answer", "answer": "..."}

"model" segments are exactly what the policy writes (a stop string ends each one); "tool"
segments are exactly what the host appends (agent.template.render_tool_response of the
tools.registry.ToolSet text), so an SFT trainer tokenises each segment after the rendered prompt.
The tool settings used (topk, snippet_chars) must equal the ones used at RL time.

Imperfect demos: "recovered" makes one wrong search (a near-name distractor, or a vague query)
and notices it; "wrong_answer" follows a distractor's fact or stops one hop early, so its
thoughts still name the entities found before the mistake (a near-miss in E-GRPO's sense).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

from egrpo_jax.agent.parse import ToolCall, format_answer, format_call, format_think
from egrpo_jax.agent.template import render_tool_response
from egrpo_jax.data.schema import QARecord
from egrpo_jax.datagen.synth.corpus import FACT_NOUN
from egrpo_jax.datagen.synth.world import Node, World
from egrpo_jax.tools.base import SearchBackend
from egrpo_jax.tools.registry import ToolConfig, ToolSet
from egrpo_jax.tools.search import snippet

PERFECT, RECOVERED, WRONG, EARLY_STOP = "perfect", "recovered", "wrong_answer", "early_stop"


class Unanswerable(RuntimeError):
    """A fact the oracle needs is not visible in the search results."""


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    recovered_rate: float = 0.15  # fraction of demos with one wrong search that is noticed and fixed
    wrong_rate: float = 0.1  # fraction of demos that end with a wrong answer
    # fraction of demos that answer one hop too early (the entity found so far): a weak teacher's
    # habit, the same mistake in every question, so the policy can unlearn it in general
    early_stop_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for k in ("recovered_rate", "wrong_rate", "early_stop_rate"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ValueError(f"DemoConfig.{k} must be in [0, 1], got {getattr(self, k)}")
        if self.recovered_rate + self.wrong_rate + self.early_stop_rate > 1.0:
            raise ValueError("DemoConfig.recovered_rate + wrong_rate + early_stop_rate must be <= 1")

    def kind(self, u: float) -> str:
        """The demo kind for a uniform draw u in [0, 1)."""
        for kind, rate in ((RECOVERED, self.recovered_rate), (WRONG, self.wrong_rate),
                           (EARLY_STOP, self.early_stop_rate)):
            if u < rate:
                return kind
            u -= rate
        return PERFECT


def demos_over_splits(splits: dict[str, list[QARecord]], demos: DemoConfig,
                      demo: Callable[[QARecord, str, random.Random], dict[str, Any]], name: str,
                      ) -> tuple[dict[str, list[QARecord]], list[dict[str, Any]], int]:
    """(kept splits, one demo per kept train question, dropped). One kind draw per question of every
    split, in split order, so each demo's kind is fixed by demos.seed; a question for which
    `demo(q, kind, rng)` raises Unanswerable is dropped from every split. `name` names the seeds'
    random streams ("{name}s-{seed}" for the kinds, "{name}-{seed}-{question id}" per demo)."""
    rng = random.Random(f"{name}s-{demos.seed}")
    keep: dict[str, list[QARecord]] = {split: [] for split in splits}
    out: list[dict[str, Any]] = []
    dropped = 0
    for split, records in splits.items():
        for q in records:
            kind = demos.kind(rng.random())
            try:
                d = demo(q, kind, random.Random(f"{name}-{demos.seed}-{q.id}"))
            except Unanswerable:
                dropped += 1
                continue
            keep[split].append(q)
            if split == "train":
                out.append({"id": f"demo-{len(out):06d}", **d})
    return keep, out, dropped


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _fact(rel: str, subj: Node, obj: Node) -> str:
    return f"The {FACT_NOUN[rel]} of {subj.name} is {obj.name}."


class Oracle:
    """Runs demonstrations against a search backend through the real tool code."""

    def __init__(self, world: World, doc_of: dict[str, str], backend: SearchBackend, tools: ToolConfig):
        self.world, self.doc_of, self.backend, self.tools = world, doc_of, backend, tools
        self.toolset = ToolSet(backend, tools)
        self.twins: dict[str, list[Node]] = {}
        for d in world.distractors.values():
            self.twins.setdefault(d.distractor_of, []).append(d)

    def close(self) -> None:
        self.toolset.close()

    # ---- tool access ------------------------------------------------------------------------------
    def _search(self, query: str) -> str:
        res = self.toolset.search([query])
        if not res.ok:
            raise Unanswerable(f"search {query!r} failed: {res.error}")
        return res.text

    def visible_fact(self, query: str, subj: Node, obj: Node) -> bool:
        """Is subj's document among the hits of `query`, with obj's name in its shown snippet?"""
        hits = self.backend.search([query], self.tools.topk)[0]
        doc_id = self.doc_of[subj.id]
        return any(h.doc_id == doc_id and obj.name in snippet(h.text, self.tools.snippet_chars) for h in hits)

    # ---- demonstrations ---------------------------------------------------------------------------
    def demo(self, q: QARecord, kind: str = PERFECT, rng: random.Random | None = None) -> dict[str, Any]:
        """One demonstration for question q (raises Unanswerable if the perfect path is blocked)."""
        rng = rng or random.Random(0)
        w = self.world
        nodes = [w.nodes[i] for i in q.metadata["chain"]]
        rels: list[str] = q.metadata["relations"]
        fuzzed = bool(q.metadata["fuzzed"])
        h = len(rels)
        segs: list[dict[str, str]] = []
        pending: list[str] = []  # thought sentences not yet written

        def call(query: str) -> str:
            text = format_think(" ".join(pending)) + "\n" + format_call(ToolCall("search", {"query": [query]}))
            segs.append({"role": "model", "text": text})
            segs.append({"role": "tool", "text": render_tool_response(self._search(query))})
            pending.clear()
            return query

        def finish(answer: str) -> None:
            segs.append({"role": "model", "text": format_think(" ".join(pending)) + "\n" + format_answer(answer)})

        wrong_hop = rng.randrange(h) if kind == WRONG else -1  # the hop that goes wrong
        stop_hop = rng.randrange(1, h) if kind == EARLY_STOP and h > 1 else -1  # answered after hop stop_hop - 1
        detour_hop = rng.randrange(h) if kind == RECOVERED else -1
        detoured = False
        first = nodes[0].fuzz if fuzzed else nodes[0].name
        pending.append(f"First I need the {FACT_NOUN[rels[0]]} of {first}.")
        cur = nodes[0]  # the node the agent is looking up now (may be wrong after a mistake)
        went_wrong = False
        for k in range(h):
            rel = rels[k]
            known = not (k == 0 and fuzzed)  # does the agent know cur's name yet?
            if k == detour_hop:
                detoured = self._detour(cur, rel, known, call, pending, rng)
            query = cur.name if known else cur.fuzz_query
            if k == stop_hop:
                pending[-1] = f"So the answer is {cur.name}."  # replaces "Next I need ..."
                finish(cur.name)
                return self._record(q, segs, cur.name, EARLY_STOP)
            if k == wrong_hop:
                nxt = self._mistake(k, cur, rel, nodes, query, call, rng)
                if nxt is None:  # stop early: answer the node just found
                    pending[-1] = f"So the answer is {cur.name}."  # replaces "Next I need ..."
                    finish(cur.name)
                    return self._record(q, segs, cur.name, WRONG)
                went_wrong = True
            else:
                if not went_wrong and not self.visible_fact(query, cur, nodes[k + 1]):
                    raise Unanswerable(
                        f"{q.id}: hop {k}: '{_fact(rel, cur, nodes[k + 1])}' not in the results of {query!r}"
                    )
                call(query)
                nxt = self.world.nodes[cur.rels[rel]]
            if not known:
                pending.append(f"{_cap(cur.fuzz)} is {cur.name}.")
            pending.append(_fact(rel, cur, nxt))
            cur = nxt
            if k + 1 < h:
                pending.append(f"Next I need the {FACT_NOUN[rels[k + 1]]} of {cur.name}.")
        pending.append(f"So the answer is {cur.name}.")
        finish(cur.name)
        if kind == RECOVERED and not detoured:
            kind = PERFECT
        return self._record(q, segs, cur.name, kind)

    def _twins(self, node: Node) -> list[Node]:
        return self.twins.get(node.id, [])

    def _detour(self, cur: Node, rel: str, known: bool, call, pending: list[str], rng) -> bool:
        """One wrong search before the right one, noticed in the next thought. False if none fits."""
        twins = self._twins(cur) if known else []
        if twins:
            twin = rng.choice(twins)
            call(twin.name)  # a near-name slip
            pending.append(f"These results are about {twin.name}, not {cur.name}. I will search for {cur.name}.")
            return True
        query = f"the {FACT_NOUN[rel]}"  # too vague to find the entity
        if cur.name in self._search(query):
            return False
        call(query)
        target = cur.name if known else cur.fuzz
        pending.append(f"The results do not mention {target}. I will search for it directly.")
        return True

    def _mistake(self, k: int, cur: Node, rel: str, nodes, query: str, call, rng) -> Node | None:
        """Hop k goes wrong: a distractor's fact read as cur's, a wrong fact, or (None) stop early."""
        twins = self._twins(cur) if (k > 0 or query == cur.name) else []
        if twins:
            twin = rng.choice(twins)
            call(twin.name)  # a misspelt search; its document states the distractor's facts
            return self.world.nodes[twin.rels[rel]]
        if k >= 1:
            return None
        call(query)  # the right search, misread: a wrong entity of the right type
        wrong = [n for n in self.world.of_type(nodes[1].type) if n.id != nodes[1].id]
        return rng.choice(wrong)

    def _record(self, q: QARecord, segs, answer: str, kind: str) -> dict[str, Any]:
        correct = answer in q.answers
        return {
            "question_id": q.id,
            "question": q.question,
            "segments": segs,
            "correct": correct,
            "kind": kind if (kind not in (WRONG, EARLY_STOP) or not correct) else PERFECT,
            "answer": answer,
        }
