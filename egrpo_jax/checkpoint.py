"""Orbax checkpoints of a training run: params, optimizer state, step, PRNG key, data state.

Layout: `<dir>/<step>/state` (the train state's arrays, written as a flat dict "a000000".. in
tree order, so any pytree - nnx.State, optax states - round-trips) and `<dir>/<step>/meta`
(JSON: step, PRNG key data, data-iterator state, the leaves' key paths as a structure check).

Crash safety: orbax writes each step into a temporary folder and renames it into place when
complete; the manager lists only finished steps, so a run killed (even SIGKILL) during a save
restarts from the previous complete step; leftover temporary folders are removed on start. A
finished step that cannot be read back (a truncated data file, an emptied meta file) is skipped
with one warning: `restore` falls back to the newest readable step and moves the bad folder to
`<step>.unreadable` (kept for inspection, out of the way of the steps the run writes next). A save
that fails (full disk) raises CheckpointError naming the folder and the cause in one line.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from egrpo_jax.errors import RunError

log = logging.getLogger(__name__)


def _raised_in_orbax(exc: BaseException | None) -> bool:
    """Whether exc, or an exception it was chained from, passed through orbax's code."""
    seen = 0
    while exc is not None and seen < 20:
        tb = exc.__traceback__
        while tb is not None:
            if f"{os.sep}orbax{os.sep}" in tb.tb_frame.f_code.co_filename:
                return True
            tb = tb.tb_next
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


# Checkpoint folders whose save this process reported failed (Checkpointer.save): copies of that
# failure, left in futures nobody awaits, name a path inside one of them.
_FAILED_SAVES: set[str] = set()


def _copies_a_failed_save(exc: BaseException | None) -> bool:
    """Whether exc is a write error inside a folder whose failed save was already reported. TensorStore
    completes its write futures from C++, so they carry no traceback to say they came from orbax."""
    text = str(exc) if exc is not None else ""
    return any(f"{d}{os.sep}" in text for d in _FAILED_SAVES)


class _DropOrbaxFailureCopies(logging.Filter):
    """A failed orbax read or write is reported again, multi-line, by orbax's worker threads (absl)
    and by its abandoned asyncio tasks and futures (asyncio); save and restore raise the same
    error, and the caller reports its cause in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "_SignalingThread.run() raised an exception" in msg:
            return False
        if "exception was never retrieved" not in msg:
            return True
        # The exception's own traceback, or the failed save it names, says where it came from: a
        # message's text could name orbax without coming from it.
        exc = record.exc_info[1] if record.exc_info else None
        return not (_raised_in_orbax(exc) or _copies_a_failed_save(exc))


def _drop_closed_loop_noise(unraisable, _default=sys.unraisablehook) -> None:
    # After a failed write orbax closes its event loop while tensorstore still completes the other
    # writes; each completion callback then reports 'Event loop is closed' (nothing is lost).
    exc = unraisable.exc_value
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
        return
    # A failed read: restore raises the error (newest_readable names it in one line); orbax's
    # sibling read coroutines, abandoned, report the same failure again with a page of spec.
    if str(exc).startswith("Encountered error while reading array index") and _raised_in_orbax(exc):
        return
    _default(unraisable)


for _name in ("absl", "asyncio"):
    logging.getLogger(_name).addFilter(_DropOrbaxFailureCopies())
sys.unraisablehook = _drop_closed_loop_noise


class CheckpointError(RunError):
    """A checkpoint could not be written, or no step of a folder can be read."""


class CheckpointMismatch(ValueError):
    """A readable checkpoint of another model / optimizer: a user error, never skipped."""


def _cause(e: BaseException) -> str:
    """The root cause of an orbax / tensorstore failure, short: 'No space left on device', ..."""
    while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}" + (f" ({e.filename})" if e.filename else "")
    text = str(e).strip() or type(e).__name__
    code = re.search(r"os_error_code='(\d+)'", text)  # tensorstore's file errors carry the errno
    if code:
        return os.strerror(int(code.group(1)))
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}"


def _flatten(tree: Any) -> tuple[dict[str, Any], list[str], Any]:
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    flat = {f"a{i:06d}": leaf for i, (_, leaf) in enumerate(leaves_with_path)}
    paths = [jax.tree_util.keystr(p) for p, _ in leaves_with_path]
    return flat, paths, treedef


def _abstract(x: Any) -> Any:
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x


class Checkpointer:
    """Save every `every` steps (and on demand), keep the last `keep`, restore the latest."""

    def __init__(self, directory: str, *, every: int = 1, keep: int = 3):
        if every < 1 or keep < 1:
            raise ValueError(f"checkpoint.every and checkpoint.keep must be >= 1, got {every}, {keep}")
        self.directory = os.path.abspath(directory)
        self.every = every
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False, cleanup_tmp_directories=True,
        )
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:
            raise OSError(e.errno, f"checkpoint.dir: cannot create the folder ({e.strerror})", self.directory) from None
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def should_save(self, step: int) -> bool:
        return step % self.every == 0

    def save(self, step: int, state: Any, *, rng: jax.Array | None = None, data_state: Any = None) -> None:
        """Write checkpoint `step` synchronously (returns when it is complete on disk)."""
        flat, paths, _ = _flatten(state)
        meta = {
            "step": int(step),
            "rng": None if rng is None else np.asarray(jax.random.key_data(rng)).tolist(),
            "data": data_state,
            "paths": paths,
        }
        need = sum(int(getattr(x, "nbytes", 0)) for x in flat.values())
        free = shutil.disk_usage(self.directory).free
        if need > free:  # a full disk: say so before orbax starts a write that cannot finish
            raise CheckpointError(f"checkpoint.dir {self.directory}: saving step {step} needs about "
                                  f"{need / 2**20:.1f} MiB, the disk has {free / 2**20:.1f} MiB free")
        try:
            self.manager.save(
                int(step),
                args=ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - orbax/tensorstore bury the cause deep in the chain
            _FAILED_SAVES.add(self.directory)
            gc.collect()  # orbax's abandoned tasks report now (filtered above), not after our line
            raise CheckpointError(f"checkpoint.dir {self.directory}: saving step {step} failed: {_cause(e)}") from e

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore into the structure/shardings of `target` (e.g. a freshly initialised train state).

        Without `step`: the newest readable step (unreadable newer ones are skipped and moved aside).
        """
        if step is not None:
            return self._restore(target, step)
        return newest_readable(self, lambda s: self._restore(target, s), quarantine=True)

    def _restore(self, target: Any, step: int) -> tuple[Any, dict[str, Any]]:
        flat, paths, treedef = _flatten(target)
        abstract = {k: _abstract(v) for k, v in flat.items()}
        out = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        meta = dict(out["meta"])
        if meta.get("paths") != paths:
            raise CheckpointMismatch(
                f"{self.directory}/{step}: checkpoint structure differs from the model/optimizer being restored "
                f"({len(meta.get('paths') or [])} leaves saved, {len(paths)} expected)"
            )
        state = jax.tree_util.tree_unflatten(treedef, [out["state"][k] for k in flat])
        return state, meta

    def close(self) -> None:
        self.manager.close()


def newest_readable(ckpt: Checkpointer, read: Callable[[int], Any], *, quarantine: bool) -> Any:
    """read(step) for the newest step that reads. Unreadable newer steps are named in one warning
    line (and, with `quarantine`, renamed `<step>.unreadable` so the run can write them again)."""
    steps = ckpt.all_steps()
    if not steps:
        raise FileNotFoundError(f"{ckpt.directory}: no complete checkpoint")
    skipped = []
    for step in sorted(steps, reverse=True):
        try:
            out = read(step)
        except CheckpointMismatch:
            raise
        except Exception as e:  # noqa: BLE001 - any read failure of one step: try the one before
            path = os.path.join(ckpt.directory, str(step))
            if quarantine and jax.process_index() == 0 and os.path.isdir(path):
                os.replace(path, path + ".unreadable")
            skipped.append(f"{step} ({_cause(e)})")
            gc.collect()  # abandoned read coroutines report now (filtered above), not mid-run
            continue
        if skipped:
            moved = " (moved to <step>.unreadable)" if quarantine else ""
            log.warning("checkpoint.dir %s: skipped unreadable step %s%s; using step %d", ckpt.directory,
                        ", ".join(skipped), moved, step)
            if quarantine:
                ckpt.manager.reload()
        return out
    raise CheckpointError(f"checkpoint.dir {ckpt.directory}: no readable step; unreadable: {', '.join(skipped)}")


def rng_from_meta(meta: dict[str, Any]) -> jax.Array | None:
    if meta.get("rng") is None:
        return None
    return jax.random.wrap_key_data(np.asarray(meta["rng"], dtype=np.uint32))


def restore_params(directory: str, model, step: int | None = None, *, what: nnx.filterlib.Filter = nnx.Param):
    """Load the policy params of a training checkpoint into `model` (an NNX Decoder of the same
    config, e.g. from models.sharding.create_model) and return it; the optimizer state is skipped.
    `what` selects the model's variables the checkpoint holds: a LoRA run's are its adapters
    (nnx.LoRAParam), a full run's every weight (models.lora.BASE when the model also has adapters).

    The result can be exported with models.loading.save_pretrained (`egrpo convert`).
    """
    params = nnx.state(model, what)
    flat, paths, treedef = _flatten(params)

    def read(step: int):
        meta = ckpt.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        prefix = ".params"  # TrainState.params leaves come first in tree order
        saved = [p for p in meta["paths"] if p.startswith(prefix)]
        if [p[len(prefix):] for p in saved] != paths:
            raise CheckpointMismatch(f"{directory}/{step}: saved params do not match this model's parameters")
        abstract = {k: _abstract(v) for k, v in flat.items()}  # leaves a000000.. are the params
        return ckpt.manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            abstract, restore_args=jax.tree.map(lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding), abstract),
            partial_restore=True)))

    ckpt = Checkpointer(directory)
    try:
        out = read(step) if step is not None else newest_readable(ckpt, read, quarantine=False)
        nnx.update(model, jax.tree_util.tree_unflatten(treedef, [out["state"][k] for k in flat]))
    finally:
        ckpt.close()
    return model
