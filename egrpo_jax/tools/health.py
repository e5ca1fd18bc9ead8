"""Search health during training: a dead backend fails the run at start, a lasting outage stops it.

Tool failures are rollout data (error text in <tool_response>), so a run whose every search
fails would otherwise train on error text and exit 0. `check_search` runs one query before the
first step; `FailureWatch` warns on every step whose tool failure rate passes
search.failure_warn_rate and stops the run (SearchOutage, exit 1) after search.failure_stop_steps
such steps in a row. Checkpoints already written are kept: fix the search and `--resume`.
"""

from __future__ import annotations

import logging
from typing import Any

from egrpo_jax.errors import RunError

log = logging.getLogger(__name__)

PROBE_QUERY = "health check"


class SearchOutage(RunError):
    """Search is down (at start) or has failed for too many steps in a row."""


def check_search(tools: Any, *, close: bool = False) -> None:
    """One query through `tools` (a ToolSet); SearchOutage naming the backend and its error if it
    fails (then `tools` is closed first when `close`)."""
    res = tools.search([PROBE_QUERY])
    if res.ok:
        return
    backend = getattr(tools, "backend", None)
    where = getattr(backend, "base", None) or type(backend).__name__
    if close:
        tools.close()
    raise SearchOutage(f"search backend {where} is not answering ({res.error}); start it or fix search.* "
                       "before training")


class FailureWatch:
    """Per-step tool failure rate from the rollout metrics (agent/tool_calls/failed and /total)."""

    def __init__(self, warn_rate: float, stop_steps: int):
        if not 0.0 <= warn_rate <= 1.0 or stop_steps < 0:
            raise ValueError(f"FailureWatch needs warn_rate in [0, 1] and stop_steps >= 0, got {warn_rate}, {stop_steps}")
        self.warn_rate, self.stop_steps = float(warn_rate), int(stop_steps)
        self.bad_steps = 0  # consecutive steps above warn_rate

    def update(self, step: int, metrics: dict[str, Any]) -> None:
        total = float(metrics.get("agent/tool_calls/total", 0.0))
        failed = float(metrics.get("agent/tool_calls/failed", 0.0))
        rate = failed / total if total else 0.0
        if rate <= self.warn_rate:
            self.bad_steps = 0
            return
        self.bad_steps += 1
        log.warning("step %d: %d of %d tool calls failed (%.0f%% > search.failure_warn_rate %.0f%%), %d step(s) "
                    "in a row", step, failed, total, 100 * rate, 100 * self.warn_rate, self.bad_steps)
        if self.stop_steps and self.bad_steps >= self.stop_steps:
            raise SearchOutage(f"step {step}: tool calls failed above {100 * self.warn_rate:.0f}% for {self.bad_steps} "
                               f"steps in a row (search.failure_stop_steps = {self.stop_steps}); stopped, the "
                               "checkpoints written so far are kept: fix the search backend and --resume")

    @classmethod
    def from_config(cls, cfg) -> FailureWatch:
        return cls(cfg.search.failure_warn_rate, cfg.search.failure_stop_steps)
