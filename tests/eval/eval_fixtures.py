"""Builders for hand-made trajectories and records shared by the eval tests."""

from __future__ import annotations

from egrpo_jax.agent.trajectory import ANSWERED, FORMAT_ERROR, ToolCallRecord, Trajectory
from egrpo_jax.data.schema import Entity, QARecord

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(qid: str, answer: str, entities: list[str], aliases: tuple[str, ...] = ()) -> QARecord:
    return QARecord(
        id=qid,
        question=f"question {qid}?",
        answer=answer,
        answer_aliases=aliases,
        entities=tuple(Entity(e) for e in entities),
    )


def traj(
    qid: str,
    answer: str | None,
    thoughts: list[str],
    *,
    status: str = ANSWERED,
    tools: int = 0,
    model_tokens: int = 5,
    host_tokens: int = 2,
    prompt_len: int = 3,
    format_error: str | None = None,
) -> Trajectory:
    n = prompt_len + model_tokens + host_tokens
    mask = [0] * prompt_len + [1] * model_tokens + [0] * host_tokens
    calls = [ToolCallRecord("search", {"query": [f"q{i}"]}, "resp", True, 0.0) for i in range(tools)]
    if status == FORMAT_ERROR and format_error is None:
        format_error = "bad_json"
    return Trajectory(
        question_id=qid,
        tokens=list(range(n)),
        loss_mask=mask,
        logprobs=[0.0] * n,
        prompt_len=prompt_len,
        thoughts=thoughts,
        tool_calls=calls,
        answer=answer if status == ANSWERED else None,
        status=status,
        format_error=format_error,
    )


def mention(*names: str) -> list[str]:
    """One <think> block naming the given entities."""
    return ["I should look at " + ", ".join(names) + " first."] if names else ["no idea yet"]
