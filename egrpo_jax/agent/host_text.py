"""Encoding the text the host writes: the template is structure, everything else is data.

The prompt template and the tool-response wrapper may hold control tokens (`<|im_start|>`, the
demo BPE's atomic tags). A question, a tool's output or a corpus document never does: text in them
that spells a special or added token is encoded as ordinary text (`encode_text`), so the model
never sees a structural token it did not write and the host did not mean.

Text with no control-token text in it is encoded exactly as before (one `encode` of the whole
string); only data holding such text is encoded piecewise: template, then data as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence

from egrpo_jax.agent.template import (
    RESPONSE_PREFIX,
    RESPONSE_SUFFIX,
    TOOL_NAMES,
    encode,
    encode_many,
    render_prompt,
    render_tool_response,
)
from egrpo_jax.tokenizer_api import TokenizerLike

# Stands in for the question while the template is rendered, to find where the question goes.
_MARKER = "\u2063EGRPO-QUESTION\u2063"


def _holds_control(text: str, controls: dict[str, int]) -> bool:
    return any(c and c in text for c in controls)


def encode_text(tokenizer: TokenizerLike, text: str) -> list[int]:
    """Ids of `text` as data: never a control token id (see module doc)."""
    return [int(i) for i in tokenizer.encode_text(text)]


def encode_prompt(tokenizer: TokenizerLike, question: str, *, style: str = "full",
                  tools: Sequence[str] = TOOL_NAMES) -> list[int]:
    """The prompt ids for `question`: the template's tokens as rendered, the question as data."""
    text = render_prompt(tokenizer, question, style=style, tools=tools)
    if not _holds_control(question, tokenizer.control_tokens()):
        return encode(tokenizer, text)
    framed = render_prompt(tokenizer, _MARKER, style=style, tools=tools)
    if framed.count(_MARKER) != 1:
        raise ValueError("the chat template changed the question; cannot place it as plain text")
    before, after = framed.split(_MARKER)
    return encode(tokenizer, before) + encode_text(tokenizer, question) + encode(tokenizer, after)


def encode_tool_responses(tokenizer: TokenizerLike, bodies: Sequence[str]) -> list[list[int]]:
    """Ids of render_tool_response(body) for each body: the wrapper is structure, the body data."""
    controls = tokenizer.control_tokens()
    out: list[list[int] | None] = [None] * len(bodies)
    plain = [i for i, b in enumerate(bodies) if not _holds_control(b, controls)]
    for i, ids in zip(plain, encode_many(tokenizer, [render_tool_response(bodies[i]) for i in plain])):
        out[i] = ids
    for i, b in enumerate(bodies):
        if out[i] is None:
            out[i] = encode(tokenizer, RESPONSE_PREFIX) + encode_text(tokenizer, b) + encode(tokenizer, RESPONSE_SUFFIX)
    return out  # type: ignore[return-value]
