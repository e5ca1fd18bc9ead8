"""Parse model output in the ReAct format. Never raises: malformed output is a format error kind.

A *segment* is what the model wrote between two host insertions: any number of
`<think>...</think>` blocks (whitespace between them is fine), then exactly one action,
`<tool_call>{json}</tool_call>` or `<answer>...</answer>`, then nothing but whitespace.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from egrpo_jax.agent.template import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CALL_CLOSE,
    CALL_OPEN,
    RESP_CLOSE,
    RESP_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
)
from egrpo_jax.tools.registry import TOOL_NAMES

# Format error kinds.
BAD_JSON = "bad_json"  # <tool_call> body is not a JSON object
UNKNOWN_TOOL = "unknown_tool"  # "name" missing, not a string, or not an enabled tool
MISSING_ARGUMENTS = "missing_arguments"  # "arguments" missing / not an object, or a required key absent
BAD_ARGUMENTS = "bad_arguments"  # a required argument has the wrong type or is empty
TEXT_OUTSIDE_TAGS = "text_outside_tags"  # non-whitespace text outside <think>/<tool_call>/<answer>
UNCLOSED_TAG = "unclosed_tag"  # an opening tag without its closing tag
UNEXPECTED_TAG = "unexpected_tag"  # a stray closing tag, a model-written <tool_response>, a response without a call
EMPTY_ANSWER = "empty_answer"  # <answer></answer> with only whitespace inside
NO_ANSWER = "no_answer"  # the output ended without a final <answer>
FORMAT_ERRORS = (
    BAD_JSON, UNKNOWN_TOOL, MISSING_ARGUMENTS, BAD_ARGUMENTS, TEXT_OUTSIDE_TAGS,
    UNCLOSED_TAG, UNEXPECTED_TAG, EMPTY_ANSWER, NO_ANSWER,
)

_STRAY = (THINK_CLOSE, CALL_CLOSE, ANSWER_CLOSE, RESP_OPEN, RESP_CLOSE)
# Required arguments per tool: name -> (list-valued keys, string-valued keys).
_REQUIRED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "search": (("query",), ()),
    "visit": (("url",), ("goal",)),
}


@dataclasses.dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]  # normalised: list-valued keys are lists of non-empty strings


@dataclasses.dataclass
class ParsedSegment:
    thoughts: list[str]
    call: ToolCall | None = None
    answer: str | None = None
    error: str | None = None  # a FORMAT_ERRORS kind
    detail: str = ""  # human-readable reason, for logs


@dataclasses.dataclass
class ParsedRollout:
    thoughts: list[str]
    calls: list[ToolCall]
    answer: str | None
    error: str | None
    detail: str = ""


def _as_str_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(v, str) and v.strip() for v in value):
        return None
    return [v.strip() for v in value]


def parse_call(body: str, tools: Sequence[str] = TOOL_NAMES) -> tuple[ToolCall | None, str | None, str]:
    """Parse the JSON inside <tool_call>: (call, error kind, detail)."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as e:
        return None, BAD_JSON, f"invalid JSON: {str(e)[:80]}"
    if not isinstance(obj, dict):
        return None, BAD_JSON, f"tool call must be a JSON object, got {type(obj).__name__}"
    name = obj.get("name")
    if not isinstance(name, str) or name not in tools:
        return None, UNKNOWN_TOOL, f"unknown tool {str(name)[:40]!r}; available: {list(tools)}"
    args = obj.get("arguments")
    if isinstance(args, str):  # some models JSON-encode the arguments object
        try:
            args = json.loads(args)
        except (ValueError, RecursionError):
            return None, MISSING_ARGUMENTS, "arguments is a string that is not a JSON object"
    if not isinstance(args, dict):
        return None, MISSING_ARGUMENTS, "tool call has no 'arguments' object"
    list_keys, str_keys = _REQUIRED.get(name, ((), ()))
    norm: dict[str, Any] = {}
    for key in (*list_keys, *str_keys):
        if key not in args:
            return None, MISSING_ARGUMENTS, f"{name} needs argument {key!r}"
    for key in list_keys:
        values = _as_str_list(args[key])
        if values is None:
            return None, BAD_ARGUMENTS, f"{name}.{key} must be a non-empty string or list of non-empty strings"
        norm[key] = values
    for key in str_keys:
        if not isinstance(args[key], str):
            return None, BAD_ARGUMENTS, f"{name}.{key} must be a string"
        norm[key] = args[key].strip()
    return ToolCall(name, norm), None, ""


def _fail(seg: ParsedSegment, kind: str, detail: str) -> ParsedSegment:
    seg.error, seg.detail = kind, detail
    return seg


def parse_segment(text: str, tools: Sequence[str] = TOOL_NAMES) -> ParsedSegment:
    """Parse one model segment (see module doc). A segment with no action is NO_ANSWER."""
    seg = ParsedSegment(thoughts=[])
    if not isinstance(text, str):
        return _fail(seg, TEXT_OUTSIDE_TAGS, f"segment is {type(text).__name__}, not text")
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            return _fail(seg, NO_ANSWER, "segment ended without a tool call or an answer")
        if text.startswith(THINK_OPEN, pos):
            end = text.find(THINK_CLOSE, pos + len(THINK_OPEN))
            if end < 0:
                return _fail(seg, UNCLOSED_TAG, f"{THINK_OPEN} without {THINK_CLOSE}")
            seg.thoughts.append(text[pos + len(THINK_OPEN) : end].strip())
            pos = end + len(THINK_CLOSE)
            continue
        if text.startswith(CALL_OPEN, pos):
            end = text.find(CALL_CLOSE, pos + len(CALL_OPEN))
            if end < 0:
                return _fail(seg, UNCLOSED_TAG, f"{CALL_OPEN} without {CALL_CLOSE}")
            call, kind, detail = parse_call(text[pos + len(CALL_OPEN) : end], tools)
            if kind is not None:
                return _fail(seg, kind, detail)
            seg.call = call
            pos = end + len(CALL_CLOSE)
            break
        if text.startswith(ANSWER_OPEN, pos):
            end = text.find(ANSWER_CLOSE, pos + len(ANSWER_OPEN))
            if end < 0:
                return _fail(seg, UNCLOSED_TAG, f"{ANSWER_OPEN} without {ANSWER_CLOSE}")
            answer = text[pos + len(ANSWER_OPEN) : end].strip()
            if not answer:
                return _fail(seg, EMPTY_ANSWER, "the answer is empty")
            seg.answer = answer
            pos = end + len(ANSWER_CLOSE)
            break
        for tag in _STRAY:
            if text.startswith(tag, pos):
                return _fail(seg, UNEXPECTED_TAG, f"unexpected {tag} at offset {pos}")
        return _fail(seg, TEXT_OUTSIDE_TAGS, f"text outside tags at offset {pos}: {text[pos:pos + 30]!r}")
    rest = text[pos:]
    if rest.strip():
        seg.call = seg.answer = None
        return _fail(seg, TEXT_OUTSIDE_TAGS, f"text after the action: {rest.strip()[:30]!r}")
    return seg


def _split_host(text: str) -> tuple[list[str], str | None]:
    """Split a whole rollout into model segments around host <tool_response> blocks."""
    segments, pos = [], 0
    while True:
        start = text.find(RESP_OPEN, pos)
        if start < 0:
            segments.append(text[pos:])
            return segments, None
        end = text.find(RESP_CLOSE, start + len(RESP_OPEN))
        if end < 0:
            segments.append(text[pos:start])
            return segments, f"{RESP_OPEN} without {RESP_CLOSE}"
        segments.append(text[pos:start])
        pos = end + len(RESP_CLOSE)


def parse_rollout(text: str, tools: Sequence[str] = TOOL_NAMES) -> ParsedRollout:
    """Parse everything after the prompt (model segments + host tool responses)."""
    out = ParsedRollout(thoughts=[], calls=[], answer=None, error=None)
    if not isinstance(text, str):
        out.error, out.detail = TEXT_OUTSIDE_TAGS, "rollout is not text"
        return out
    segments, unclosed = _split_host(text)
    if unclosed:
        out.error, out.detail = UNCLOSED_TAG, unclosed
        return out
    for i, raw in enumerate(segments):
        seg = parse_segment(raw, tools)
        out.thoughts.extend(seg.thoughts)
        last = i == len(segments) - 1
        if seg.error is not None:
            out.error, out.detail = seg.error, seg.detail
            return out
        if seg.call is not None:
            out.calls.append(seg.call)
            if last:
                out.error, out.detail = NO_ANSWER, "ended with a tool call that got no response"
                return out
        elif not last:  # an answer followed by a tool response
            out.error, out.detail = UNEXPECTED_TAG, f"{RESP_OPEN} after the answer"
            return out
        else:
            out.answer = seg.answer
    return out


def format_call(call: ToolCall) -> str:
    """Canonical text of a call (the inverse of parse_call for normalised calls)."""
    return f"{CALL_OPEN}{json.dumps({'name': call.name, 'arguments': call.arguments})}{CALL_CLOSE}"


def format_think(thought: str) -> str:
    return f"{THINK_OPEN}{thought}{THINK_CLOSE}"


def format_answer(answer: str) -> str:
    return f"{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
