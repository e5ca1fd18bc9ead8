"""Question batches for GRPO from a grain pipeline: shard, shuffle by seed, repeat, batch.

A batch is B questions; the learner repeats each G times for its rollout group. The pipeline runs
over record *indices* (a grain ``MapDataset``), so its iterator state is a tiny dict
(``{"next_index": n}`` plus our own fingerprint) that goes into a training checkpoint as JSON;
restoring it resumes at exactly the same question.

Sharding is per host (``shard_index`` / ``shard_count`` = ``jax.process_index()`` /
``jax.process_count()``): each host takes every ``shard_count``-th record *before* shuffling, so
hosts never see the same question in an epoch and each host's order is deterministic by seed.
Each epoch is reshuffled (grain seeds the shuffle with the epoch number).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import grain

from egrpo_jax.data.schema import QARecord


def _fingerprint(records: Sequence[QARecord]) -> str:
    h = hashlib.sha1()
    for r in records:
        h.update(r.id.encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


class QuestionStream:
    """Iterator of ``list[QARecord]`` batches with checkpointable state.

    ``num_epochs=None`` repeats forever. Batches never straddle a shard: with ``drop_remainder``
    (default True) every batch has exactly ``batch_size`` questions (batches may span an epoch
    boundary when repeating, which keeps the step count simple).
    """

    def __init__(
        self,
        records: Sequence[QARecord],
        batch_size: int,
        seed: int,
        num_epochs: int | None = None,
        shard_index: int = 0,
        shard_count: int = 1,
        *,
        shuffle: bool = True,
        drop_remainder: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shard_count < 1 or not 0 <= shard_index < shard_count:
            raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index}/{shard_count}")
        if num_epochs is not None and num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1 or None (forever), got {num_epochs}")
        self.records = list(records)
        n_shard = len(range(shard_index, len(self.records), shard_count))
        if n_shard < (batch_size if drop_remainder else 1):
            raise ValueError(
                f"shard {shard_index}/{shard_count} holds {n_shard} questions, fewer than batch_size={batch_size}"
            )
        self.batch_size = batch_size
        self.seed = seed
        self.num_epochs = num_epochs
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.shard_size = n_shard
        ds = grain.MapDataset.range(len(self.records))[shard_index::shard_count]
        if shuffle:
            ds = ds.shuffle(seed=seed)
        ds = ds.repeat(num_epochs)
        self._ds = ds.batch(batch_size, drop_remainder=drop_remainder, batch_fn=list)
        self._it = iter(self._ds)
        self._key = {
            "fingerprint": _fingerprint(self.records),
            "batch_size": batch_size,
            "seed": seed,
            "shard_index": shard_index,
            "shard_count": shard_count,
            "shuffle": shuffle,
        }

    def __iter__(self) -> QuestionStream:
        return self

    def __next__(self) -> list[QARecord]:
        idx = next(self._it)  # raises StopIteration after the last epoch
        return [self.records[int(i)] for i in idx]

    def __len__(self) -> int:
        """Batches in the whole stream (only for a finite number of epochs)."""
        if self.num_epochs is None:
            raise TypeError("an infinite QuestionStream (num_epochs=None) has no length")
        return len(self._ds)

    @property
    def steps_per_epoch(self) -> float:
        return self.shard_size / self.batch_size

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state: grain's iterator state plus what it is only valid for."""
        return {"grain": dict(self._it.get_state()), **self._key}

    def set_state(self, state: dict[str, Any]) -> None:
        for k, v in self._key.items():
            if state.get(k) != v:
                raise ValueError(
                    f"data state key '{k}' is {state.get(k)!r} but this stream has {v!r}; "
                    "resume with the same questions, batch size, seed and sharding"
                )
        self._it.set_state(state["grain"])
