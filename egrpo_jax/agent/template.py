"""The ReAct prompt: tags, tool schemas, the system prompt, and the text the host writes.

Rendering goes through the tokenizer's chat template when it has one; otherwise a plain
"System/User/Assistant" layout is used. Prompt styles:
  - "full": tool JSON schemas + the turn format (for real models, paper setting);
  - "short": one paragraph (for tiny models / short contexts in the CPU demo).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from egrpo_jax.config import PROMPT_STYLES
from egrpo_jax.tokenizer_api import TokenizerLike
from egrpo_jax.tools.registry import TOOL_NAMES

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESP_OPEN, RESP_CLOSE = "<tool_response>", "</tool_response>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# The engine stops a row when it emits one of these; the host then acts on the segment.
STOP_STRINGS: tuple[str, ...] = (CALL_CLOSE, ANSWER_CLOSE)


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

assert tuple(TOOL_SCHEMAS) == TOOL_NAMES, "a prompt schema for each tool of tools.registry"

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


def render_prompt(
    tokenizer: TokenizerLike | None, question: str, *, style: str = "full", tools: Sequence[str] = TOOL_NAMES
) -> str:
    """The full prompt text for one question, ending where the model starts writing: the tokenizer's
    chat template when it has one, else the plain layout (also for `tokenizer` None)."""
    system = system_prompt(style, tools)
    if tokenizer is None or tokenizer.chat_template is None:
        return _plain(system, question)
    try:
        return tokenizer.apply_chat_template([{"role": "system", "content": system},
                                              {"role": "user", "content": question}])
    except ValueError:  # templates without a system role raise (TemplateError): fold it into the user turn
        return tokenizer.apply_chat_template([{"role": "user", "content": f"{system}\n\n{question}"}])


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


def encode(tokenizer: TokenizerLike, text: str) -> list[int]:
    """Token ids of host-written `text` (tags and template are structure), without BOS/EOS."""
    return [int(i) for i in tokenizer.encode(text)]


def encode_many(tokenizer: TokenizerLike, texts: list[str]) -> list[list[int]]:
    """encode() of each text, in one batched call (parallel for a real BPE)."""
    if not texts:
        return []
    return [[int(i) for i in ids] for ids in tokenizer.encode_batch(texts)]


def stop_token_sequences(tokenizer: TokenizerLike) -> list[list[int]]:
    """STOP_STRINGS as token ids, in STOP_STRINGS order (for the scripted test engine, which
    replays exact tokenisations).

    A real BPE merges a stop string with neighbouring text, so the engine matches decoded text
    instead (sampling.stops.StopTable.for_tokenizer). The agent loop itself checks the decoded
    segment, not stop_index.
    """
    return [encode(tokenizer, s) for s in STOP_STRINGS]
