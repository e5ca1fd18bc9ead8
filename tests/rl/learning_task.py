"""A small deterministic agent task on which GRPO must visibly learn (tests/rl/test_learning.py).

K invented countries, each with a capital; one corpus document per country ("The capital of X is
Y."); questions ask for a country's capital in three phrasings. The policy writes whole actions as
single tokens: SEARCH(c) ("<think>I will look up c.</think><tool_call>search c</tool_call>") or
ANSWER(v) ("<think>The answer is v.</think><answer>v</answer>"); every other piece of text
(prompt, tool responses) is tokenised by a phrase tokenizer (names and fixed phrases are one token
each, the rest bytes), so rollouts are ~25 tokens and a step takes well under a second.

The SFT cold start teaches the format only: demos search a RANDOM country and then answer the
capital shown in the tool response. The SFT policy therefore searches at random (reward ~1/K);
RL has to learn to search for the country named in the question. E-GRPO's entities are the
country and the capital: a rollout that searched the right country but answered wrong has
match rate 1/2 (its SEARCH thought names the country).
"""

from __future__ import annotations

import json
import random

from egrpo_jax.agent.template import render_prompt, render_tool_response
from egrpo_jax.data.schema import Document, Entity, QARecord
from egrpo_jax.tokenizer_api import PlainTokenizer

COUNTRIES = ("Avaland", "Borduria", "Cetania", "Drovia", "Elbonia", "Fenwick", "Gorvia", "Halmar")
CAPITALS = ("Quorra", "Rimsk", "Sarno", "Tulba", "Umbrek", "Vesca", "Wolmo", "Xandu")
PHRASINGS = ("What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital of {c}.")


def search_text(c: str) -> str:
    call = json.dumps({"name": "search", "arguments": {"query": [c]}})
    return f"<think>I will look up {c}.</think>\n<tool_call>{call}</tool_call>"


def answer_text(v: str) -> str:
    return f"<think>The answer is {v}.</think>\n<answer>{v}</answer>"


class PhraseTokenizer(PlainTokenizer):
    """id 0 = EOS (and padding); then whole phrases (actions, names, fixed prompt pieces), longest match
    first; then bytes. Phrases are no control tokens: text in data encodes like any text."""

    eos_ids = (0,)
    pad_id = 0

    def __init__(self, k: int):
        names = list(COUNTRIES[:k]) + list(CAPITALS[:k])
        self.actions = [search_text(c) for c in COUNTRIES[:k]] + [answer_text(v) for v in CAPITALS[:k]]
        prompt = render_prompt(None, "Q", style="short")
        head, tail = prompt.split("Q")
        fixed = [head, tail, "What is the capital of ", "Which city is the capital of ", "Name the capital of ",
                 '\n<tool_response>\nResults for "', '":\n1. ', " (url: ", ")\nThe capital of ", " is ",
                 ".\n</tool_response>\n"]
        self.phrases = self.actions + names + fixed
        self._order = sorted(range(len(self.phrases)), key=lambda i: -len(self.phrases[i]))
        self.byte0 = 1 + len(self.phrases)
        self.vocab_size = self.byte0 + 256

    def action_id(self, text: str) -> int:
        return 1 + self.phrases.index(text)

    def encode(self, text: str) -> list[int]:
        out, i = [], 0
        while i < len(text):
            for j in self._order:
                if text.startswith(self.phrases[j], i):
                    out.append(1 + j)
                    i += len(self.phrases[j])
                    break
            else:
                out.extend(self.byte0 + b for b in text[i].encode())
                i += 1
        return out

    def decode(self, ids) -> str:
        parts, buf = [], bytearray()
        for t in ids:
            t = int(t)
            if t >= self.byte0:
                buf.append(t - self.byte0)
                continue
            parts.append(buf.decode(errors="replace"))
            buf = bytearray()
            if t > 0:
                parts.append(self.phrases[t - 1])
        return "".join(parts) + buf.decode(errors="replace")


def corpus(k: int) -> list[Document]:
    return [Document(f"d{i}", c, f"The capital of {c} is {v}.") for i, (c, v) in enumerate(zip(COUNTRIES[:k], CAPITALS[:k]))]


def questions(k: int) -> list[QARecord]:
    out = []
    for i, (c, v) in enumerate(zip(COUNTRIES[:k], CAPITALS[:k])):
        for j, p in enumerate(PHRASINGS):
            out.append(QARecord(f"q{i}-{j}", p.format(c=c), v, (), (Entity(c), Entity(v))))
    return out


def format_demos(k: int, tools, n: int, seed: int, hint: float = 0.0) -> list[dict]:
    """SFT demos in the demo-file format: a search (the question's country with probability `hint`,
    else a random one), then the capital the response shows."""
    rng = random.Random(seed)
    qs = questions(k)
    out = []
    for i in range(n):
        q = qs[i % len(qs)]
        c = q.entities[0].name if rng.random() < hint else rng.choice(COUNTRIES[:k])
        v = CAPITALS[COUNTRIES.index(c)]
        response = tools.search([c]).text
        out.append({"id": f"demo-{i}", "question": q.question, "segments": [
            {"role": "model", "text": search_text(c)},
            {"role": "tool", "text": render_tool_response(response)},
            {"role": "model", "text": answer_text(v)},
        ]})
    return out
