"""Train/dev/test (and rl) splits by start entity: questions that share a start never straddle splits."""

from __future__ import annotations

import random

from egrpo_jax.data.schema import QARecord


def split_by_start(
    questions: list[QARecord], dev_fraction: float, test_fraction: float, seed: int, rl_fraction: float = 0.0,
) -> dict[str, list[QARecord]]:
    """Group by ``metadata["chain"][0]``; fill test, then dev, then rl (only when rl_fraction > 0) to
    their fractions; the rest is train.

    Since a chain's start is in one split only, no test question has the same chain (node sequence)
    as a train question. test and dev do not depend on rl_fraction (they are filled first, from
    the same shuffled order), so a world with an rl split is evaluated on the same questions.
    """
    rng = random.Random(f"split-{seed}")
    by_start: dict[str, list[QARecord]] = {}
    for q in questions:
        by_start.setdefault(q.metadata["chain"][0], []).append(q)
    keys = sorted(by_start)
    rng.shuffle(keys)
    n = len(questions)
    want = {"test": test_fraction * n, "dev": dev_fraction * n, "rl": rl_fraction * n}
    splits: dict[str, list[QARecord]] = {"train": [], "dev": [], "test": []}
    if rl_fraction > 0:
        splits["rl"] = []
    held = [s for s in ("test", "dev", "rl") if s in splits]
    for k in keys:
        group = by_start[k]
        name = next((s for s in held if len(splits[s]) + len(group) / 2 <= want[s]), "train")
        splits[name].extend(group)
    for s in splits.values():
        s.sort(key=lambda q: q.id)
    return splits


def chain_key(q: QARecord) -> tuple[str, ...]:
    return tuple(q.metadata["chain"])
