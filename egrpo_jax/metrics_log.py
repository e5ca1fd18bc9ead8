"""Per-step metrics to TensorBoard (tensorboardX), a JSONL file and a tqdm progress bar.

Named metrics_log (not logging) so it never shadows the standard library module. A run that
starts at step `initial` (a resume) first drops the rows of later steps from metrics.jsonl: the
killed run logged them after its last checkpoint and this run logs them again, so every step
appears once.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from tensorboardX import SummaryWriter
from tqdm import tqdm

log = logging.getLogger(__name__)


class MetricsLogger:
    """`log(step, metrics)` writes every `every` steps; the bar advances on every call and shows the
    metrics of `shown` (label -> metric key) under their labels."""

    def __init__(self, directory: str, *, every: int = 1, total: int | None = None, initial: int = 0,
                 progress: bool = True, shown: Mapping[str, str] | None = None, desc: str = "train"):
        self.every = max(int(every), 1)
        self.shown = dict(shown or {})
        self.directory = directory
        self._jsonl = None
        self._tb = None
        if directory:
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, "metrics.jsonl")
            _drop_steps_after(path, initial)
            self._jsonl = open(path, "a", encoding="utf-8")
            self._tb = SummaryWriter(directory)
        self._bar = tqdm(total=total, initial=initial, desc=desc, disable=not progress, dynamic_ncols=True)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if step % self.every == 0:
            if self._jsonl is not None:
                row = {"step": int(step), **{k: (v if math.isfinite(v) else None) for k, v in clean.items()}}
                self._jsonl.write(json.dumps(row) + "\n")
                self._jsonl.flush()
            if self._tb is not None:
                for k, v in clean.items():
                    if math.isfinite(v):  # e.g. accuracy of an empty subset is NaN: not plotted
                        self._tb.add_scalar(k, v, step)
                self._tb.flush()
        self._bar.set_postfix(self.postfix(clean), refresh=False)
        self._bar.update(1)

    def postfix(self, metrics: Mapping[str, float]) -> dict[str, str]:
        """The bar's fields for `metrics`: each label of `shown` whose metric is present."""
        return {label: f"{float(metrics[key]):.3g}" for label, key in self.shown.items() if key in metrics}

    def close(self) -> None:
        self._bar.close()
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()


def _drop_steps_after(path: str, step: int) -> None:
    """Rewrite `path` without rows of steps > `step` (atomically; a torn last line goes too)."""
    if not os.path.exists(path):
        return
    keep, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
                ok = int(row["step"]) <= step
            except (ValueError, KeyError, TypeError):  # a line cut by a kill: not a logged step
                ok = False
            if ok:
                keep.append(line)
            elif line.strip():
                dropped += 1
    if dropped:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(keep)
        os.replace(tmp, path)
        log.warning("%s: dropped %d row(s) after step %d (this run logs those steps again)", path, dropped, step)


def read_metrics(directory: str) -> list[dict[str, Any]]:
    path = os.path.join(directory, "metrics.jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
