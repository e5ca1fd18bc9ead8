"""evaluate() through the real agent loop and ToolSet, with a scripted engine and a char tokenizer."""

import pytest
from eval_fixtures import record

from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.eval.runner import evaluate
from egrpo_jax.sampling.api import BUDGET, EOS, STOP, SamplingParams, Segment
from egrpo_jax.tools.base import Hit
from egrpo_jax.tokenizer_api import PlainTokenizer
from egrpo_jax.tools.registry import ToolSet

EOS_ID = 0


class CharTokenizer(PlainTokenizer):
    eos_ids = (EOS_ID,)
    pad_id = 0
    vocab_size = 256  # the real-engine test's tiny model; the scripted engine takes any code point

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids if i != EOS_ID)


class ScriptedEngine:
    """A row's prompt names its question; the g-th rollout of a question plays scripts[question][g]
    (one scripted text per segment)."""

    def __init__(self, num_rows, scripts, max_len=4096):
        self.num_rows, self.max_len, self.scripts = num_rows, max_len, scripts
        self.seeds, self.inserted = [], []
        self.tok = CharTokenizer()
        self.max_busy = 0

    def reset(self, *, seed=0, params=None):
        self.seeds.append(seed)
        self.queue, self.len, self.budget, self.seen = {}, {}, {}, {}

    def insert(self, rows, prompts, *, stream_ids):
        for r, p, j in zip(rows, prompts, stream_ids, strict=True):
            assert r not in self.len, f"row {r} is in use"
            text = self.tok.decode(p)
            q = next(q for q in self.scripts if f"User: {q}" in text)
            g = self.seen.get(q, 0)
            self.seen[q] = g + 1
            self.queue[r] = list(self.scripts[q][g])
            self.len[r] = len(p)
            self.inserted.append(j)
        self.max_busy = max(self.max_busy, len(self.len))

    def begin(self, rows, max_new_tokens):
        self.budget.update(zip(rows, max_new_tokens, strict=True))

    def decode(self, max_steps=0):
        out = {}
        for r in sorted(self.budget):
            text = self.queue[r].pop(0)
            ids = self.tok.encode(text)
            if text.endswith(("</tool_call>", "</answer>")):
                reason = STOP
            else:
                ids, reason = ids + [EOS_ID], EOS
            if len(ids) > self.budget[r]:
                ids, reason = ids[: self.budget[r]], BUDGET
            self.len[r] += len(ids)
            out[r] = Segment(ids, [-0.5] * len(ids), [-0.7] * len(ids), reason)
        self.budget = {}
        return out

    def extend(self, rows, tokens):
        for r, t in zip(rows, tokens):
            assert r in self.len
            self.len[r] += len(t)

    def mark_done(self, rows):
        for r in rows:
            del self.len[r]


class Corpus:
    def search(self, queries, topk):
        return [
            [Hit("d1", "Aldora", "Aldora lies in Calloway, whose capital is Brenvik.", 1.0)] for _ in queries
        ]

    def fetch(self, ids):
        return [None for _ in ids]


SEARCH = '<think>Look up Aldora.</think>\n<tool_call>{"name": "search", "arguments": {"query": ["Aldora"]}}</tool_call>'
SCRIPTS = {
    "Capital of Aldora's region?": [
        [SEARCH, "<think>Aldora is in Calloway, capital Brenvik.</think>\n<answer>Brenvik</answer>"],
        ["<think>No idea.</think>\n<answer>Oslo</answer>"],
        ["rambling without tags"],
    ],
    "Region of Aldora?": [
        [SEARCH, "<think>Aldora lies in Calloway.</think>\n<answer>Calloway</answer>"],
        [SEARCH, SEARCH, "<think>Calloway, surely.</think>\n<answer>the Calloway</answer>"],
        ["<think>Aldora is near Brenvik.</think>\n<answer>Brenvik</answer>"],
    ],
    "Who founded Dunmore?": [
        ["<think>" + "x" * 500 + "</think><answer>y</answer>"],  # runs past the turn budget
        ["<think>Dunmore was founded by Ela.</think>\n<answer>Ela</answer>"],
        ["<think>Ela.</think>\n<answer>Ela</answer>"],
    ],
}
RECORDS = [
    record("q1", "Brenvik", ["Aldora", "Calloway"]),
    record("q2", "Calloway", ["Aldora"]),
    record("q3", "Ela", ["Dunmore", "Ela"]),
]


def _records():
    return [
        type(r)(id=r.id, question=q, answer=r.answer, answer_aliases=r.answer_aliases, entities=r.entities)
        for r, q in zip(RECORDS, SCRIPTS)
    ]


def test_evaluate_with_scripted_engine():
    made, batches = [], []

    def factory(rows):
        made.append(ScriptedEngine(rows, SCRIPTS))
        return made[-1]

    with ToolSet(Corpus()) as tools:
        scores, summary = evaluate(
            None,
            CharTokenizer(),
            _records(),
            tools,
            k=3,
            sampling=SamplingParams(temperature=0.6, top_p=0.95),
            agent_cfg=AgentConfig(max_turn_tokens=200, prompt_style="short", group_size=7, seed=99),
            batch_size=2,
            seed=5,
            engine_factory=factory,
            on_question=lambda i, trajs, sc: batches.append((i, len(trajs), [s.question_id for s in sc])),
        )
    assert len(made) == 1 and made[0].num_rows == 6  # one engine, batch_size * k rows
    assert made[0].seeds == [5] and made[0].max_busy == 6  # one seed; 2 questions x 3 in flight at most
    assert made[0].inserted == list(range(9))  # rollouts enter rows in question-major order
    # each question is reported once its 3 rollouts have ended (q1 waits for its tool-calling rollout)
    assert sorted(batches) == [(0, 3, ["q1"] * 3), (1, 3, ["q2"] * 3), (2, 3, ["q3"] * 3)]
    assert [s.question_id for s in scores] == ["q1"] * 3 + ["q2"] * 3 + ["q3"] * 3
    assert [s.sample for s in scores] == [0, 1, 2] * 3
    assert [s.status for s in scores] == [
        "answered",
        "answered",
        "format_error",
        "answered",
        "answered",
        "answered",
        "overlength",
        "answered",
        "answered",
    ]
    assert scores[2].format_error == "text_outside_tags"
    assert [s.correct for s in scores] == [True, False, False, True, True, False, False, True, True]
    assert [s.num_tool_calls for s in scores] == [1, 0, 0, 1, 2, 0, 0, 0, 0]
    # thoughts only: q1#0 names Aldora and Calloway; q3#1 names Dunmore and Ela; q3#2 only Ela
    assert [s.entities_matched for s in scores] == [2, 0, 0, 1, 1, 1, 0, 2, 1]
    assert summary["pass@1"] == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert summary["pass@3"] == 1.0 and summary["any@1"] == pytest.approx(2 / 3)
    assert summary["tool_calls/mean"] == pytest.approx(4 / 9)
    assert summary["format_error_rate"] == pytest.approx(1 / 9) and summary[
        "overlength_rate"
    ] == pytest.approx(1 / 9)
    assert summary["sampling"] == {"temperature": 0.6, "top_p": 0.95, "top_k": 0}
    assert summary["time/total_s"] >= 0 and "time/eval_s" in summary


@pytest.mark.parametrize(
    "kw,message",
    [({"k": 0}, "eval.k must be >= 1"), ({"batch_size": 0}, "eval.batch_size must be >= 1")],
)
def test_evaluate_rejects_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        evaluate(None, CharTokenizer(), _records(), None, engine_factory=lambda n: None, **kw)


def test_evaluate_rejects_duplicate_ids_and_empty_sets():
    recs = _records()
    with pytest.raises(ValueError, match="question id 'q1' appears more than once"):
        evaluate(None, CharTokenizer(), [recs[0], recs[0]], None, engine_factory=lambda n: None)
    with pytest.raises(ValueError, match="no questions"):
        evaluate(None, CharTokenizer(), [], None, engine_factory=lambda n: None)
