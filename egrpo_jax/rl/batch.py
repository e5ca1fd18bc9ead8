"""Trajectories -> right-padded NumPy training arrays with power-of-two bucketed shapes.

Bucketing bounds the number of train-step compilations: the row count is the next power of two
(at least `min_rows`, and a multiple of `row_multiple` so it splits into micro-batches and over
the data axes) and the length the next power of two >= the longest trajectory (at least
`min_len`). Padding rows and padding positions have mask 0, so they carry no loss.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def row_length(longest: int, min_len: int, max_len: int | None) -> int:
    """Row length for sequences of at most `longest` tokens: the next power of two, but never more
    than the producer's limit `max_len` rounded up to 64 (a 768-token cap pads to 768, not 1024:
    25% fewer positions and ~44% less attention)."""
    length = next_pow2(max(min_len, longest))
    if max_len:
        length = max(min(length, -(-max_len // 64) * 64), longest)
    return length


def bucket_rows(n: int, row_multiple: int = 1, min_rows: int = 1) -> int:
    rows = next_pow2(max(n, min_rows, 1))
    return -(-rows // row_multiple) * row_multiple


@dataclasses.dataclass
class TrainBatch:
    tokens: np.ndarray  # int32 [B, T]
    mask: np.ndarray  # float32 [B, T]: 1 on model-written tokens that are trained on
    old_logp: np.ndarray  # float32 [B, T]: sampler log-probs (0 off the mask)
    advantages: np.ndarray  # float32 [B]
    num_real: int  # sequences packed (rows 0..num_real-1 unless packed; the rest is padding)
    # packed rows only (pack_sequences(pack=True)): per-token position within its sequence and
    # sequence id (1, 2, ... within a row; 0 = padding); None = one sequence per row from 0
    positions: np.ndarray | None = None
    segments: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.tokens.shape  # type: ignore[return-value]


def pack_trajectories(
    trajectories: Sequence,
    advantages: Sequence[float] | None = None,
    include: Sequence[bool] | None = None,
    *,
    row_multiple: int = 1,
    min_rows: int = 1,
    min_len: int = 16,
    max_len: int | None = None,
    pad_id: int = 0,
) -> TrainBatch:
    """Pack agent.trajectory.Trajectory objects (token-in, token-out: the exact sampled ids).

    `max_len` is the agent's token cap (agent.max_total_tokens): rows are then at most that long
    rounded up to 64 (row_length) instead of the next power of two.

    `include[i] = False` keeps rollout i out of the loss (overlength, filtered groups): its row is
    packed (shapes stay the same) with an all-zero mask. The old log-probs are the sampler's
    `logprobs`, under the distribution it sampled from; the learner recomputes that same
    distribution (rl.logprobs), so the ratio is 1 on-policy.
    """
    n = len(trajectories)
    if n == 0:
        raise ValueError("pack_trajectories: no trajectories")
    adv = np.zeros(n, np.float32) if advantages is None else np.asarray(advantages, np.float32)
    inc = np.ones(n, bool) if include is None else np.asarray(include, bool)
    if adv.shape != (n,) or inc.shape != (n,):
        raise ValueError(f"pack_trajectories: {n} trajectories but advantages {adv.shape}, include {inc.shape}")
    rows = bucket_rows(n, row_multiple, min_rows)
    length = row_length(max(len(t.tokens) for t in trajectories), min_len, max_len)
    tokens = np.full((rows, length), pad_id, np.int32)
    mask = np.zeros((rows, length), np.float32)
    old = np.zeros((rows, length), np.float32)
    for i, t in enumerate(trajectories):
        k = len(t.tokens)
        tokens[i, :k] = t.tokens
        lp = t.logprobs
        m = np.asarray(t.loss_mask, np.float32)
        if k and m[0] != 0:
            raise ValueError(f"trajectory {t.question_id}: the first token cannot be a model token")
        if inc[i]:
            mask[i, :k] = m
            old[i, :k] = np.where(m > 0, np.asarray(lp, np.float32), 0.0)
    out_adv = np.zeros(rows, np.float32)
    out_adv[:n] = adv
    return TrainBatch(tokens, mask, old, out_adv, n)


def drop_silent_rows(batch: TrainBatch, weights: np.ndarray, row_multiple: int = 1) -> tuple[TrainBatch, np.ndarray]:
    """Keep only rows that move the loss: a trained token and a non-zero advantage.

    Without a KL term a row with advantage 0 adds exactly 0 to the policy loss and its gradient,
    so training on it is wasted compute (late in a run most GRPO groups are all-correct). `weights`
    were computed on the full batch, so the kept rows keep their normalisation and the update is
    the same. The kept rows are padded (zero weight and mask) to a power-of-two multiple of
    `row_multiple`, so the learner compiles for a few row counts only.
    """
    live = np.flatnonzero((weights.sum(axis=1) > 0) & (batch.advantages != 0))
    rows = bucket_rows(len(live), row_multiple)
    if len(live) == 0 or rows >= batch.tokens.shape[0]:
        return batch, weights
    sel = np.concatenate([live, np.full(rows - len(live), live[0])])
    pad = np.arange(rows) >= len(live)
    w = np.where(pad[:, None], 0.0, weights[sel]).astype(weights.dtype)
    mask = np.where(pad[:, None], 0.0, batch.mask[sel]).astype(batch.mask.dtype)
    adv = np.where(pad, 0.0, batch.advantages[sel]).astype(batch.advantages.dtype)
    return TrainBatch(batch.tokens[sel], mask, batch.old_logp[sel], adv, len(live)), w


def pack_sequences(
    tokens: Sequence[Sequence[int]],
    masks: Sequence[Sequence[int]],
    *,
    row_multiple: int = 1,
    min_rows: int = 1,
    min_len: int = 16,
    max_len: int | None = None,
    pad_id: int = 0,
    pack: bool = False,
) -> TrainBatch:
    """Pack plain (tokens, mask) pairs, e.g. SFT demonstrations; sequences over max_len are cut.

    The row length is the next power of two >= the longest sequence, but never more than max_len
    rounded up to 64 (a 768-token limit pads to 768, not 1024). With `pack`, sequences share rows
    (first-fit, longest first; each attends only to itself, positions restarting at 0), and the
    row count is rounded up to a multiple of 4 (and of row_multiple) rather than a power of two,
    never above the unpacked count: demos of very uneven lengths then cost their tokens, not rows
    x the longest. Each sequence's first token is unmasked (no prediction), so no loss crosses a
    sequence boundary.
    """
    if not tokens:
        raise ValueError("pack_sequences: no sequences")
    seqs = [list(t)[:max_len] if max_len else list(t) for t in tokens]
    ms = [list(m)[: len(s)] for m, s in zip(masks, seqs)]
    for i, (s, m) in enumerate(zip(seqs, ms)):
        if len(m) != len(s):
            raise ValueError(f"pack_sequences: row {i} has {len(s)} tokens but {len(m)} mask entries")
    length = row_length(max(len(s) for s in seqs), min_len, max_len)
    if not pack:
        placed = [[(i, 0)] for i in range(len(seqs))]
        rows = bucket_rows(len(seqs), row_multiple, min_rows)
    else:
        placed, free = [], []  # per row: (sequence, offset); tokens left
        for i in sorted(range(len(seqs)), key=lambda i: -len(seqs[i])):
            r = next((r for r, f in enumerate(free) if f >= len(seqs[i])), None)
            if r is None:
                placed.append([])
                free.append(length)
                r = len(placed) - 1
            placed[r].append((i, length - free[r]))
            free[r] -= len(seqs[i])
        q = math.lcm(row_multiple, 4)
        # never more rows than one sequence per row would take (a large row_multiple: micro-batches x devices)
        rows = min(max(-(-len(placed) // q) * q, min_rows), bucket_rows(len(seqs), row_multiple, min_rows))
    tok = np.full((rows, length), pad_id, np.int32)
    mask = np.zeros((rows, length), np.float32)
    pos = np.zeros((rows, length), np.int32)
    seg = np.zeros((rows, length), np.int32)
    for r, row in enumerate(placed):
        for j, (i, off) in enumerate(row):
            n = len(seqs[i])
            tok[r, off:off + n] = seqs[i]
            mask[r, off:off + n] = ms[i]
            if n:
                mask[r, off] = 0.0  # a sequence's first token has no prediction
            pos[r, off:off + n] = np.arange(n)
            seg[r, off:off + n] = j + 1
    extra = dict(positions=pos, segments=seg) if pack else {}
    return TrainBatch(tok, mask, np.zeros_like(mask), np.zeros(rows, np.float32), len(seqs), **extra)
