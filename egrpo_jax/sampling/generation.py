"""`generate`: one-shot text generation through the rollout engine (no tools, one segment)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from egrpo_jax.sampling.api import SamplingParams
from egrpo_jax.sampling.engine import Engine
from egrpo_jax.sampling.stops import StopTable
from egrpo_jax.tokenizer_api import TokenizerLike


@dataclasses.dataclass
class Generation:
    tokens: list[int]  # new token ids (stop sequence / EOS included when it ended the row)
    text: str  # tokenizer.decode(tokens)
    logprobs: list[float]  # log-probs under the distribution sampled from (0.0 when greedy)
    raw_logprobs: list[float]  # model log-softmax at temperature 1
    stop_reason: str  # one of egrpo_jax.sampling.api.STOP_REASONS


def generate(
    model,
    tokenizer: TokenizerLike,
    prompts: Sequence[str | Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    stop: Sequence[str | Sequence[int]] = (),
    seed: int = 0,
    cache_dtype: str | None = None,
) -> list[Generation]:
    """Generate for each prompt (a string, encoded with tokenizer.encode, or token ids).

    `stop`: all strings (matched on the decoded text, however the tokens merge) or all token-id
    sequences (matched exactly).
    """
    if isinstance(prompts, str):
        raise TypeError("generate: prompts must be a list of prompts (str or token ids), got one str")
    if max_new_tokens < 1:
        raise ValueError(f"generate: max_new_tokens must be >= 1, got {max_new_tokens}")
    if not prompts:
        return []
    ids = [tokenizer.encode(p) if isinstance(p, str) else list(p) for p in prompts]
    texts = [s for s in stop if isinstance(s, str)]
    if texts and len(texts) != len(stop):
        raise TypeError("generate: stop must be all strings or all token-id sequences")
    stops = texts if texts else StopTable.from_ids([list(s) for s in stop], model.cfg.vocab_size)
    engine = Engine.for_tokenizer(
        model, tokenizer, num_rows=len(ids), max_len=max(len(p) for p in ids) + max_new_tokens,
        sampling=SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k), stops=stops,
        cache_dtype=cache_dtype,
    )
    engine.start(ids, seed=seed)
    segments = engine.decode_segment(max_new_tokens)
    return [
        Generation(s.tokens, tokenizer.decode(s.tokens), s.logprobs, s.raw_logprobs, s.stop_reason)
        for s in segments
    ]
