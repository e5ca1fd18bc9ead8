"""Compile once: jax's persistent compilation cache for CLI runs, and the seconds a process spends compiling.

A real-model run compiles its train step, prefill and decode kernels for every shape bucket it
meets (tens of seconds each on a CPU); the persistent cache keeps the executables on disk, keyed
by the program, the XLA flags and the jax version, so the next run with the same shapes loads them.
CLI runs use it by default (`--compile-cache DIR|off`, or EGRPO_COMPILE_CACHE); the test suite does
not (each test run starts cold, as CI does).

`use_cache` sets jax's own settings before anything compiles (cli.main calls it before jax is
imported); `watch()` counts the compile time and the cache's hits and misses through jax.monitoring.
"""

from __future__ import annotations

import os
import sys

ENV = "EGRPO_COMPILE_CACHE"
OFF = ("off", "none", "0")


def default_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "egrpo-jax", "xla")


def use_cache(where: str | None) -> str:
    """Turn the persistent cache on at `where` (None: EGRPO_COMPILE_CACHE, else default_dir(); "off":
    leave it off). Returns the folder, or "" when off. Every compile is cached (no minimum time), so a
    second run of the same shapes compiles nothing."""
    where = os.environ.get(ENV, "") if where is None else where
    if where.lower() in OFF:
        return ""
    path = os.path.abspath(os.path.expanduser(where or default_dir()))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OSError(f"--compile-cache {path}: cannot create the folder ({e.strerror}); "
                      f"pass another folder or `off`") from None
    settings = {"jax_compilation_cache_dir": path, "jax_persistent_cache_min_compile_time_secs": 0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    if "jax" in sys.modules:  # in-process callers (tests); jax reads the cache settings at its first compile
        import jax  # noqa: PLC0415

        for key, value in settings.items():
            jax.config.update(key, value)
    else:
        os.environ.update({key.upper(): str(value) for key, value in settings.items()})
    return path


_STATS = {"compile_s": 0.0, "hits": 0, "misses": 0}
# trace + lowering + XLA compile (a cache hit records its short load as backend compile time)
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_installed = False


def _on_duration(event: str, seconds: float, **_) -> None:
    if event in _COMPILE_EVENTS:
        _STATS["compile_s"] += seconds


def _on_event(event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _STATS["hits"] += 1
    elif event == "/jax/compilation_cache/cache_misses":
        _STATS["misses"] += 1


def watch() -> dict[str, float]:
    """Start counting (once per process) and return the live totals: compile_s (seconds spent tracing,
    lowering and compiling since the first call), hits and misses of the persistent cache."""
    global _installed
    if not _installed:
        from jax import monitoring  # noqa: PLC0415

        monitoring.register_event_duration_secs_listener(_on_duration)
        monitoring.register_event_listener(_on_event)
        _installed = True
    return _STATS


def compile_seconds() -> float:
    return watch()["compile_s"]
