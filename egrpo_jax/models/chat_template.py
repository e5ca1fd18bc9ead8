"""Render HF-style jinja chat templates in a sandbox (same environment options as transformers)."""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Sequence
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(ValueError):
    """A chat template raised an error (e.g. via raise_exception) or failed to parse."""


def _raise(message: str) -> None:
    raise TemplateError(f"chat template: {message}")


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys: bool = False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"chat template line {e.lineno}: {e.message}") from None


def render(template: str, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True,
           **kwargs: Any) -> str:
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise TemplateError(f"messages[{i}]: expected a dict with 'role' and 'content', got {m!r}")
    try:
        return _compile(template).render(messages=list(messages), add_generation_prompt=add_generation_prompt,
                                         **kwargs)
    except TemplateError:
        raise
    except jinja2.TemplateError as e:
        raise TemplateError(f"chat template: {e}") from None
