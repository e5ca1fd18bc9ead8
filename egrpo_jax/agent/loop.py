"""The host-side agent loop: decode segments, parse them, run tools, append responses, repeat.

Rows are questions x group_size, question-major (row = q * G + g). Every row ends in exactly
one status: answered, format_error (with a kind from agent.parse) or overlength (a token or
tool-call limit). The trajectory keeps the sampled token ids exactly (never re-tokenised).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from egrpo_jax.agent import parse as P
from egrpo_jax.agent.config import AgentConfig
from egrpo_jax.agent.host_text import encode_prompt, encode_tool_responses
from egrpo_jax.agent.template import render_tool_response
from egrpo_jax.agent.trajectory import ANSWERED, FORMAT_ERROR, OVERLENGTH, ToolCallRecord, Trajectory
from egrpo_jax.sampling.api import BUDGET, LENGTH, RolloutEngine, Segment
from egrpo_jax.tokenizer_api import TokenizerLike


def _question(q: Any) -> tuple[str, str]:
    if hasattr(q, "id") and hasattr(q, "question"):
        return str(q.id), str(q.question)
    qid, text = q
    return str(qid), str(text)


@dataclasses.dataclass
class _Row:
    qid: str
    g: int
    prompt: list[int]
    tokens: list[int]
    mask: list[int]
    logprobs: list[float]
    raw: list[float]
    thoughts: list[str] = dataclasses.field(default_factory=list)
    responses_before: list[int] = dataclasses.field(default_factory=list)  # per thought
    calls: list[ToolCallRecord] = dataclasses.field(default_factory=list)
    text: list[str] = dataclasses.field(default_factory=list)
    answer: str | None = None
    status: str | None = None  # None while live
    error: str | None = None
    detail: str = ""
    turns: int = 0

    def finish(self, status: str, detail: str = "", error: str | None = None) -> None:
        self.status, self.detail, self.error = status, detail, error

    def add(self, ids: Sequence[int], model: bool, lps: Sequence[float] = (), raw: Sequence[float] = ()) -> None:
        if model and not len(lps) == len(raw) == len(ids):
            # padding would silently give the learner a wrong ratio for these tokens
            raise ValueError(f"row {self.qid}/{self.g}: the engine returned {len(ids)} tokens but {len(lps)} "
                             f"log-probs and {len(raw)} raw log-probs")
        self.tokens.extend(int(t) for t in ids)
        self.mask.extend([1 if model else 0] * len(ids))
        self.logprobs.extend(float(x) for x in lps) if model else self.logprobs.extend([0.0] * len(ids))
        self.raw.extend(float(x) for x in raw) if model else self.raw.extend([0.0] * len(ids))

    def trajectory(self) -> Trajectory:
        return Trajectory(
            question_id=self.qid, tokens=self.tokens, loss_mask=self.mask, logprobs=self.logprobs,
            prompt_len=len(self.prompt), thoughts=self.thoughts, tool_calls=self.calls, answer=self.answer,
            status=self.status or OVERLENGTH, format_error=self.error, raw_logprobs=self.raw,
            text="".join(self.text), sample_index=self.g, detail=self.detail, num_turns=self.turns,
            responses_before=self.responses_before,
        )


class _Clock:
    def __init__(self) -> None:
        self.t: dict[str, float] = {"device": 0.0, "parse": 0.0, "tools": 0.0, "tools_wait": 0.0, "tokenize": 0.0}

    def timed(self, key: str, fn, *args, **kw):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.t[key] += time.perf_counter() - t0


def run_rollouts(
    engine: RolloutEngine,
    tokenizer: TokenizerLike,
    questions: Sequence[Any],
    tools: Any,
    cfg: AgentConfig | None = None,
    *,
    on_turn: Callable[[int, int], None] | None = None,
    on_rollout: Callable[[int, Trajectory], None] | None = None,
    first_stream: int = 0,
    params: Any = None,
) -> tuple[list[Trajectory], dict[str, float]]:
    """Roll out every question cfg.group_size times. `questions`: QARecords or (id, question) pairs.

    The rollouts (question-major, index j = q * G + g) stream through the engine's rows: a free
    row takes the next rollout (prefilled while the others keep their caches), a row waiting for
    its tool leaves the decode batch until the response is appended, and remote tool calls
    (`tools.remote`) run in a worker thread while the next decode block runs (local ones are
    waited for before it). Rollout j samples from (cfg.seed,
    first_stream + j, position) whichever row it lands in (a workload split over several calls
    keeps its streams by passing each part's offset). `cfg.segment_steps` bounds a decode block (0: until every decoding
    row ends its segment, the lock-step schedule). The schedule depends only on the tokens, never
    on timing, so a run is reproducible.

    `tools` is a tools.registry.ToolSet (anything with `.names` and `.run_batch(calls)`).
    `on_turn(turn, finished)` is called after every decode block with the number of rollouts
    finished so far; `on_rollout(j, trajectory)` as each one ends. Returns the trajectories
    (question-major) and a flat metrics dict. `params` (an nnx.State snapshot) samples from an
    earlier policy instead of the model's current parameters (off-policy rollouts).
    """
    cfg = cfg or AgentConfig()
    clock = _Clock()
    t_start = time.perf_counter()
    eos = {int(i) for i in tokenizer.eos_ids}
    names = tuple(tools.names)
    limit = min(cfg.max_total_tokens, int(engine.max_len))

    rows: list[_Row] = []
    for q in questions:
        qid, text = _question(q)
        prompt = clock.timed("tokenize", encode_prompt, tokenizer, text, style=cfg.prompt_style, tools=names)
        for g in range(cfg.group_size):
            rows.append(_Row(qid, g, list(prompt), list(prompt), [0] * len(prompt), [0.0] * len(prompt),
                             [0.0] * len(prompt)))
    if not rows:
        return [], summarize([], clock.t, 0, time.perf_counter() - t_start)

    def finished(j: int) -> None:
        if on_rollout is not None:
            on_rollout(j, rows[j].trajectory())

    # Remote tools (an HTTP search server) run while the next block decodes; in-process ones
    # (BM25 takes ~1 ms) are waited for, since overlapping them would idle each calling row for a
    # whole block. Either way the schedule depends only on the tokens.
    overlap = bool(getattr(tools, "remote", True))
    queue: collections.deque[int] = collections.deque()
    for j, r in enumerate(rows):
        if len(r.prompt) >= limit:  # no room to write: overlength before it starts, takes no row
            r.finish(OVERLENGTH, f"prompt of {len(r.prompt)} tokens leaves no room (limit {limit})")
            finished(j)
        else:
            queue.append(j)

    def budget(j: int) -> int:
        left = limit - len(rows[j].tokens)
        return min(left, cfg.max_turn_tokens) if cfg.max_turn_tokens else left

    n_slots = int(engine.num_rows)
    slot_of: list[int | None] = [None] * n_slots  # rollout held by each engine row
    decoding: set[int] = set()  # rows in the middle of a segment
    clock.timed("device", engine.reset, seed=cfg.seed, params=params)

    def respond(calls, results, release: list[int]) -> None:
        """Append the tool responses to their rows, which then begin their next segment."""
        ext_slots, ext_tokens = [], []
        encoded = clock.timed("tokenize", encode_tool_responses, tokenizer, [res.text for res in results])
        for (s, call), res, ids in zip(calls, results, encoded, strict=True):
            row = rows[slot_of[s]]
            row.calls.append(ToolCallRecord(call.name, dict(call.arguments), res.text, res.ok, res.latency_s))
            if len(row.tokens) + len(ids) > limit:
                row.finish(OVERLENGTH, f"tool response of {len(ids)} tokens overflows the {limit}-token limit")
                release.append(s)
                continue
            row.add(ids, model=False)
            row.text.append(render_tool_response(res.text))
            ext_slots.append(s)
            ext_tokens.append(ids)
        if ext_slots:
            clock.timed("device", engine.extend, ext_slots, ext_tokens)
            engine.begin(ext_slots, [budget(slot_of[s]) for s in ext_slots])
            decoding.update(ext_slots)

    worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tools")
    inflight: tuple[concurrent.futures.Future, list[tuple[int, P.ToolCall]]] | None = None
    turns = 0
    try:
        while True:
            free = [s for s in range(n_slots) if slot_of[s] is None]
            take = [queue.popleft() for _ in range(min(len(free), len(queue)))]
            if take:
                slots = free[: len(take)]
                for s, j in zip(slots, take):
                    slot_of[s] = j
                clock.timed("device", engine.insert, slots, [rows[j].prompt for j in take], stream_ids=[first_stream + j for j in take])
                engine.begin(slots, [budget(j) for j in take])
                decoding.update(slots)
            ended: dict[int, Segment] = {}
            if decoding:
                ended = clock.timed("device", engine.decode, cfg.segment_steps)
                decoding.difference_update(ended)
                turns += 1
            release: list[int] = []
            if inflight is not None:  # the previous block's tool calls ran while this block decoded
                future, calls = inflight
                inflight = None
                respond(calls, clock.timed("tools_wait", future.result), release)
            calls: list[tuple[int, P.ToolCall]] = []
            for s in sorted(ended):
                call = _take_segment(rows[slot_of[s]], ended[s], tokenizer, eos, names, cfg, limit, clock)
                if call is not None:
                    calls.append((s, call))
                else:
                    release.append(s)
            if calls:
                batch = [c for _, c in calls]
                if overlap:
                    inflight = (worker.submit(_timed_tools, tools, batch, clock), calls)
                else:  # fast local tools: the rows rejoin the very next block instead of skipping one
                    respond(calls, clock.timed("tools_wait", _timed_tools, tools, batch, clock), release)
            if release:
                clock.timed("device", engine.mark_done, release)
                for s in release:
                    finished(slot_of[s])
                    slot_of[s] = None
            if on_turn is not None and ended:
                on_turn(turns, sum(r.status is not None for r in rows))
            if inflight is None and not queue and all(s is None for s in slot_of):
                break
    finally:
        worker.shutdown(wait=True)

    trajs = [r.trajectory() for r in rows]
    return trajs, summarize(trajs, clock.t, turns, time.perf_counter() - t_start)


def _timed_tools(tools: Any, calls: list, clock: _Clock) -> list:
    return clock.timed("tools", tools.run_batch, calls)


def _take_segment(
    row: _Row, seg: Segment, tokenizer: TokenizerLike, eos: set[int], names: tuple[str, ...], cfg: AgentConfig,
    limit: int, clock: _Clock,
) -> P.ToolCall | None:
    """Record one segment on its row; return the tool call to run, or None when the row is done."""
    row.turns += 1
    row.add(seg.tokens, model=True, lps=seg.logprobs, raw=seg.raw_logprobs)
    ids = list(seg.tokens)
    while ids and ids[-1] in eos:  # EOS ids are kept in the tokens but not in the parsed text
        ids.pop()
    text = clock.timed("tokenize", tokenizer.decode, ids)
    row.text.append(text)
    parsed = clock.timed("parse", P.parse_segment, text, names)
    row.thoughts.extend(parsed.thoughts)
    row.responses_before.extend([len(row.calls)] * len(parsed.thoughts))  # every response so far is in its context
    if seg.stop_reason in (BUDGET, LENGTH):
        what = "turn" if cfg.max_turn_tokens and len(seg.tokens) >= cfg.max_turn_tokens else "total"
        limit_n = cfg.max_turn_tokens if what == "turn" else limit
        row.finish(OVERLENGTH, f"reached the {what} token limit ({limit_n})")
        return None
    if parsed.error is not None:
        row.finish(FORMAT_ERROR, parsed.detail, parsed.error)
        return None
    if parsed.answer is not None:
        row.answer = parsed.answer
        row.finish(ANSWERED)
        return None
    if len(row.calls) >= cfg.max_tool_calls:
        row.finish(OVERLENGTH, f"tool call {len(row.calls) + 1} exceeds max_tool_calls={cfg.max_tool_calls}")
        return None
    return parsed.call


def summarize(trajs: Sequence[Trajectory], times: dict[str, float], turns: int, total_s: float) -> dict[str, float]:
    """Flat metrics: statuses, format-error kinds, tool use, token counts, host vs device time."""
    n = max(len(trajs), 1)
    m: dict[str, float] = {"rollouts": float(len(trajs)), "turns": float(turns)}
    for s in (ANSWERED, FORMAT_ERROR, OVERLENGTH):
        m[f"status/{s}"] = sum(t.status == s for t in trajs) / n
    for kind in P.FORMAT_ERRORS:
        m[f"format_error/{kind}"] = sum(t.format_error == kind for t in trajs) / n
    calls = [c for t in trajs for c in t.tool_calls]
    per = np.array([t.num_tool_calls for t in trajs] or [0], np.float64)
    m["tool_calls/mean"] = float(per.mean())
    m["tool_calls/max"] = float(per.max())
    m["tool_calls/total"] = float(len(calls))
    m["tool_calls/failed"] = float(sum(not c.ok for c in calls))
    for name in ("search", "visit"):
        m[f"tool_calls/{name}"] = float(sum(c.name == name for c in calls))
    lat = np.array([c.latency_s for c in calls] or [0.0], np.float64)
    m["tool_latency/mean_s"] = float(lat.mean())
    m["tool_latency/p50_s"] = float(np.median(lat))
    m["tool_latency/max_s"] = float(lat.max())
    m["tokens/model_mean"] = float(np.mean([t.num_model_tokens for t in trajs] or [0]))
    m["tokens/host_mean"] = float(np.mean([t.num_host_tokens for t in trajs] or [0]))
    m["tokens/total_mean"] = float(np.mean([len(t.tokens) for t in trajs] or [0]))
    for k, v in times.items():
        m[f"time/{k}_s"] = float(v)
    m["time/total_s"] = float(total_s)
    m["time/host_s"] = float(total_s - times.get("device", 0.0))
    return m
