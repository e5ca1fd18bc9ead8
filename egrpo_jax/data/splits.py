"""Train/dev/test splits by start entity: questions that share a start never straddle splits."""

from __future__ import annotations

import random

from egrpo_jax.data.schema import QARecord


def split_by_start(
    questions: list[QARecord], dev_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[QARecord]]:
    """Group by ``metadata["chain"][0]``; fill test, then dev, to their fractions; the rest is train.

    Since a chain's start is in one split only, no test question has the same chain (node sequence)
    as a train question.
    """
    rng = random.Random(f"split-{seed}")
    by_start: dict[str, list[QARecord]] = {}
    for q in questions:
        by_start.setdefault(q.metadata["chain"][0], []).append(q)
    keys = sorted(by_start)
    rng.shuffle(keys)
    n = len(questions)
    want = {"test": test_fraction * n, "dev": dev_fraction * n}
    splits: dict[str, list[QARecord]] = {"train": [], "dev": [], "test": []}
    for k in keys:
        group = by_start[k]
        name = next((s for s in ("test", "dev") if len(splits[s]) + len(group) / 2 <= want[s]), "train")
        splits[name].extend(group)
    for s in splits.values():
        s.sort(key=lambda q: q.id)
    return splits


def chain_key(q: QARecord) -> tuple[str, ...]:
    return tuple(q.metadata["chain"])
