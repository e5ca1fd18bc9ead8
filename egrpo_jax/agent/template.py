"""The ReAct prompt: tags, tool schemas, the system prompt, and the text the host writes.

Rendering goes through the tokenizer's chat template when it has one; otherwise a plain
"System/User/Assistant" layout is used. Prompt styles:
  - "full": tool JSON schemas + the turn format (for real models, paper setting);
  - "short": one paragraph (for tiny models / short contexts in the CPU demo).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESP_OPEN, RESP_CLOSE = "<tool_response>", "</tool_response>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# The engine stops a row when it emits one of these; the host then acts on the segment.
STOP_STRINGS: tuple[str, ...] = (CALL_CLOSE, ANSWER_CLOSE)

TOOL_NAMES = ("search", "visit")
PROMPT_STYLES = ("full", "short")

TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    "search": {
        "name": "search",
        "description": "Search the document collection. Returns the top results (title, snippet, url) "
        "for each query.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "One or more search queries.",
                }
            },
            "required": ["query"],
        },
    },
    "visit": {
        "name": "visit",
        "description": "Read pages (urls or ids from search results) and return their content.",
        "parameters": {
            "type": "object",
            "properties": {
                "url": {"type": "array", "items": {"type": "string"}, "description": "Urls or ids to read."},
                "goal": {"type": "string", "description": "What you want to learn from the pages."},
            },
            "required": ["url", "goal"],
        },
    },
}

_FULL = """You answer questions by searching a document collection.
In every turn, first reason inside <think> </think>. Then either call one tool, written as JSON inside <tool_call> </tool_call> (its result comes back inside <tool_response> </tool_response>), or, once you know it, give the final answer inside <answer> </answer>: a short phrase, no explanation.

Tools:
{tools}

Turn format:
<think> reasoning </think>
<tool_call>{example}</tool_call>
or, to finish:
<think> reasoning </think>
<answer> short answer </answer>"""

_SHORT = (
    "Answer by searching. Think in <think></think>. Call a tool with <tool_call>{calls}</tool_call>; "
    "results come in <tool_response></tool_response>. Finish with <answer>short answer</answer>."
)

_EXAMPLES = {
    "search": {"name": "search", "arguments": {"query": ["first query", "second query"]}},
    "visit": {"name": "visit", "arguments": {"url": ["a url from the results"], "goal": "what to find"}},
}


def _check(style: str, tools: Sequence[str]) -> None:
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")
    bad = [t for t in tools if t not in TOOL_NAMES]
    if bad or not tools:
        raise ValueError(f"prompt tools must be a non-empty subset of {TOOL_NAMES}, got {list(tools)!r}")


def system_prompt(style: str = "full", tools: Sequence[str] = TOOL_NAMES) -> str:
    """The system prompt describing the tools in `tools` and the tag format."""
    _check(style, tools)
    if style == "short":
        calls = "</tool_call> or <tool_call>".join(json.dumps(_EXAMPLES[t]) for t in tools)
        return _SHORT.format(calls=calls)
    schemas = "\n".join(json.dumps(TOOL_SCHEMAS[t]) for t in tools)
    return _FULL.format(tools=schemas, example=json.dumps(_EXAMPLES[tools[0]]))


def _plain(system: str, question: str) -> str:
    return f"System: {system}\n\nUser: {question}\n\nAssistant: "


def _chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    fn = tokenizer.apply_chat_template
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    kw: dict[str, Any] = {"add_generation_prompt": True}
    # HF tokenizers return ids unless told tokenize=False; wrappers may not take the keyword.
    if "tokenize" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kw["tokenize"] = False
    out = fn(messages, **kw)
    if isinstance(out, str):
        return out
    # Some wrappers return ids only: decode once (prompt tokens are host tokens, never trained on).
    return tokenizer.decode(list(out))


def has_chat_template(tokenizer: Any) -> bool:
    if tokenizer is None or not hasattr(tokenizer, "apply_chat_template"):
        return False
    # HF tokenizers expose `chat_template` (None when absent); wrappers without it are trusted.
    return getattr(tokenizer, "chat_template", "unknown") is not None


def render_prompt(
    tokenizer: Any, question: str, *, style: str = "full", tools: Sequence[str] = TOOL_NAMES
) -> str:
    """The full prompt text for one question, ending where the model starts writing."""
    system = system_prompt(style, tools)
    if not has_chat_template(tokenizer):
        return _plain(system, question)
    try:
        return _chat(tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": question}])
    except Exception:  # noqa: BLE001 - templates without a system role raise; fold it into the user turn
        return _chat(tokenizer, [{"role": "user", "content": f"{system}\n\n{question}"}])


# The host's wrapper around a tool's text: structural (its tags may be control tokens); the body is data.
RESPONSE_PREFIX, RESPONSE_SUFFIX = f"\n{RESP_OPEN}\n", f"\n{RESP_CLOSE}\n"


def render_tool_response(body: str) -> str:
    """Exact text the host appends after a row's `</tool_call>`."""
    return f"{RESPONSE_PREFIX}{body}{RESPONSE_SUFFIX}"


def tool_response_body(text: str) -> str | None:
    """The body of a render_tool_response text, None when `text` is not one."""
    if len(text) >= len(RESPONSE_PREFIX) + len(RESPONSE_SUFFIX) and text.startswith(RESPONSE_PREFIX) \
            and text.endswith(RESPONSE_SUFFIX):
        return text[len(RESPONSE_PREFIX):len(text) - len(RESPONSE_SUFFIX)]
    return None


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` without BOS/EOS (works for HF tokenizers and simple wrappers)."""
    try:
        ids = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:
        ids = tokenizer.encode(text)
    return [int(i) for i in ids]


def encode_many(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """encode() of each text; one batched call when the tokenizer offers `encode_batch` (parallel BPE)."""
    batch = getattr(tokenizer, "encode_batch", None)
    if batch is None or not texts:
        return [encode(tokenizer, t) for t in texts]
    out = batch(texts)
    return [[int(i) for i in getattr(e, "ids", e)] for e in out]


def stop_token_sequences(tokenizer: Any) -> list[list[int]]:
    """STOP_STRINGS as token ids, in STOP_STRINGS order (for the scripted test engine, which
    replays exact tokenisations).

    A real BPE merges a stop string with neighbouring text, so the engine matches decoded text
    instead (stop_table). The agent loop itself checks the decoded segment, not stop_index.
    """
    return [encode(tokenizer, s) for s in STOP_STRINGS]


def stop_table(tokenizer: Any, vocab_size: int):
    """STOP_STRINGS as a sampling.stops.StopTable over the decoded text of each token id."""
    from egrpo_jax.sampling.stops import StopTable, token_texts

    return StopTable.from_strings(STOP_STRINGS, token_texts(tokenizer, vocab_size), vocab_size)
