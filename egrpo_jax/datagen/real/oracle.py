"""Oracle SFT demonstrations for the real-world set, searched through the real tools.

The oracle knows each question's chain (start -r1-> e1 ... -> answer) and walks it hop by hop:
for hop k it tries a few queries (the hop's sub-question "the capital of France", then
"France capital", then the bare name) and takes the first whose *shown* results contain one of the
hop's gold documents (a rendered document with a sentence stating the hop, see build.py) with the
next entity's name inside the shown snippet. If no query shows the fact, the question is
`Unanswerable` with these tool settings and its builder drops it.

The tool text in a demo is what `tools.registry.ToolSet.search` returns for the query over the
backend given (the one the rollouts will search), wrapped by `agent.template.render_tool_response`,
so a demo shows exactly what the tool returns at RL time. The agent tags are ordinary text: the
same demos serve any chat model; `rl.sft.tokenize_demo` tokenises them the way the rollout engine
sees a rollout (prompt through the chat template, tool text as data).

Demo format: datagen/synth/oracle.py's (one JSONL line per demo, "model" / "tool" segments).
Kinds: "perfect", and "early_stop" (DemoConfig.early_stop_rate): the answer is given one hop too
early (the entity found so far), a weak teacher's habit that RL can unlearn in general. The
synthetic world's "recovered" and "wrong_answer" kinds need near-name distractors the real corpus
does not have, so their rates must be 0 here.
"""

from __future__ import annotations

import random
from typing import Any

from egrpo_jax.agent.parse import ToolCall, format_answer, format_call, format_think
from egrpo_jax.agent.template import render_tool_response
from egrpo_jax.data.schema import QARecord
from egrpo_jax.datagen.real.build import PHRASES
from egrpo_jax.datagen.synth.oracle import EARLY_STOP, PERFECT, DemoConfig, Unanswerable, demos_over_splits
from egrpo_jax.tools.base import SearchBackend
from egrpo_jax.tools.registry import ToolConfig, ToolSet
from egrpo_jax.tools.search import snippet

# The relation's keyword, for the second query the oracle tries ("France capital").
_NOUN = {
    "city_in": "city", "capital": "capital", "capital_of": "capital", "chief": "chief of state",
    "chief_of": "chief of state", "head_gov": "head of government", "language": "official language",
    "currency": "currency", "sole_neighbour": "borders",
}
assert set(_NOUN) == set(PHRASES)


def check_demo_config(demos: DemoConfig) -> None:
    """The real set makes perfect and early-stop demos only (no distractors to slip on)."""
    if demos.recovered_rate or demos.wrong_rate:
        raise ValueError("the real-world demos have no 'recovered' / 'wrong_answer' kinds: set "
                         f"DemoConfig.recovered_rate and wrong_rate to 0 (got {demos.recovered_rate}, {demos.wrong_rate})")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


class RealOracle:
    """Demonstrations for real-world questions (build.build_real records) over a search backend."""

    def __init__(self, backend: SearchBackend, tools: ToolConfig):
        self.backend, self.tools = backend, tools
        self.toolset = ToolSet(backend, tools)

    def close(self) -> None:
        self.toolset.close()

    def queries(self, q: QARecord, k: int) -> list[str]:
        """The queries tried for hop k, in order."""
        name, rel = q.entities[k].name, q.metadata["relations"][k]
        return list(dict.fromkeys([q.metadata["hop_queries"][k], f"{name} {_NOUN[rel]}", name]))

    def shows_fact(self, query: str, q: QARecord, k: int) -> bool:
        """Do the shown results of `query` hold a gold document of hop k naming the next entity in its snippet?"""
        gold, nxt = set(q.metadata["gold_docs"][k]), q.entities[k + 1].variants
        hits = self.backend.search([query], self.tools.topk)[0]
        return any(h.doc_id in gold and any(v in snippet(h.text, self.tools.snippet_chars) for v in nxt)
                   for h in hits)

    def path(self, q: QARecord) -> list[str]:
        """The query of each hop (raises Unanswerable when a hop's fact is never shown)."""
        out = []
        for k in range(len(q.metadata["relations"])):
            query = next((c for c in self.queries(q, k) if self.shows_fact(c, q, k)), None)
            if query is None:
                raise Unanswerable(f"{q.id}: hop {k} ({q.metadata['hop_queries'][k]!r} -> {q.entities[k + 1].name}) "
                                   f"is not shown by any of {self.queries(q, k)} with {self.tools}")
            out.append(query)
        return out

    def _search(self, query: str) -> str:
        res = self.toolset.search([query])
        if not res.ok:
            raise Unanswerable(f"search {query!r} failed: {res.error}")
        return res.text

    def demo(self, q: QARecord, kind: str = PERFECT, rng: random.Random | None = None) -> dict[str, Any]:
        """One demonstration of `kind` for q."""
        rng = rng or random.Random(0)
        rels: list[str] = q.metadata["relations"]
        names = [e.name for e in q.entities]
        h = len(rels)
        queries = self.path(q)
        stop_hop = rng.randrange(1, h) if kind == EARLY_STOP and h > 1 else -1  # answer after hop stop_hop - 1
        segs: list[dict[str, str]] = []
        pending = [f"First I need {PHRASES[rels[0]].format(x=names[0])}."]
        answer = names[-1]
        for k in range(h):
            if k == stop_hop:
                pending[-1] = f"So the answer is {names[k]}."  # replaces "Next I need ..."
                answer = names[k]
                break
            text = format_think(" ".join(pending)) + "\n" + format_call(ToolCall("search", {"query": [queries[k]]}))
            segs.append({"role": "model", "text": text})
            segs.append({"role": "tool", "text": render_tool_response(self._search(queries[k]))})
            pending = [f"{_cap(PHRASES[rels[k]].format(x=names[k]))} is {names[k + 1]}."]
            if k + 1 < h:
                pending.append(f"Next I need {PHRASES[rels[k + 1]].format(x=names[k + 1])}.")
        else:
            pending.append(f"So the answer is {answer}.")
        segs.append({"role": "model", "text": format_think(" ".join(pending)) + "\n" + format_answer(answer)})
        correct = answer in q.answers
        return {"question_id": q.id, "question": q.question, "segments": segs, "correct": correct,
                "kind": kind if kind == PERFECT or not correct else PERFECT, "answer": answer}


def make_demos(splits: dict[str, list[QARecord]], backend: SearchBackend, tools: ToolConfig,
               demos: DemoConfig) -> tuple[dict[str, list[QARecord]], list[dict[str, Any]], int]:
    """(kept splits, one demo per kept train question, dropped): a question whose facts these tool
    settings never show is dropped from every split; the demo kinds are fixed by demos.seed."""
    check_demo_config(demos)
    oracle = RealOracle(backend, tools)
    try:
        return demos_over_splits(splits, demos, oracle.demo, "real-demo")
    finally:
        oracle.close()
