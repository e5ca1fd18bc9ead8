"""Orbax checkpoints of a training run: params, optimizer state, step, PRNG key, data state.

Layout: `<dir>/<step>/state` (the train state's arrays, written as a flat dict "a000000".. in
tree order, so any pytree - nnx.State, optax states - round-trips) and `<dir>/<step>/meta`
(JSON: step, PRNG key data, data-iterator state, the leaves' key paths as a structure check).

Crash safety: orbax writes each step into a temporary folder and renames it into place when
complete; the manager lists only finished steps, so a run killed (even SIGKILL) during a save
restarts from the previous complete step; leftover temporary folders are removed on start.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


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

    def save(self, step: int, state: Any, *, rng: jax.Array | None = None, data_state: Any = None,
             extra: dict[str, Any] | None = None) -> None:
        """Write checkpoint `step` synchronously (returns when it is complete on disk)."""
        flat, paths, _ = _flatten(state)
        meta = {
            "step": int(step),
            "rng": None if rng is None else np.asarray(jax.random.key_data(rng)).tolist(),
            "data": data_state,
            "paths": paths,
            "extra": extra or {},
        }
        self.manager.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        self.manager.wait_until_finished()

    def restore(self, target: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restore into the structure/shardings of `target` (e.g. a freshly initialised train state)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no complete checkpoint")
        flat, paths, treedef = _flatten(target)
        abstract = {k: _abstract(v) for k, v in flat.items()}
        out = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        meta = dict(out["meta"])
        if meta.get("paths") != paths:
            raise ValueError(
                f"{self.directory}/{step}: checkpoint structure differs from the model/optimizer being restored "
                f"({len(meta.get('paths') or [])} leaves saved, {len(paths)} expected)"
            )
        state = jax.tree_util.tree_unflatten(treedef, [out["state"][k] for k in flat])
        return state, meta

    def close(self) -> None:
        self.manager.close()


def rng_from_meta(meta: dict[str, Any]) -> jax.Array | None:
    if meta.get("rng") is None:
        return None
    return jax.random.wrap_key_data(np.asarray(meta["rng"], dtype=np.uint32))


def restore_params(directory: str, model, step: int | None = None):
    """Load the policy params of a training checkpoint into `model` (an NNX Decoder of the same
    config, e.g. from models.sharding.create_model) and return it; the optimizer state is skipped.

    The result can be exported with models.loading.save_pretrained (`egrpo convert`).
    """
    from flax import nnx

    ckpt = Checkpointer(directory)
    try:
        step = ckpt.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{directory}: no complete checkpoint")
        meta = ckpt.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        params = nnx.state(model, nnx.Param)
        flat, paths, treedef = _flatten(params)
        prefix = ".params"  # TrainState.params leaves come first in tree order
        saved = [p for p in meta["paths"] if p.startswith(prefix)]
        if [p[len(prefix):] for p in saved] != paths:
            raise ValueError(f"{directory}/{step}: saved params do not match this model's parameters")
        abstract = {k: _abstract(v) for k, v in flat.items()}  # leaves a000000.. are the params
        out = ckpt.manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            abstract, restore_args=jax.tree.map(lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding), abstract),
            partial_restore=True)))
        nnx.update(model, jax.tree_util.tree_unflatten(treedef, [out["state"][k] for k in flat]))
    finally:
        ckpt.close()
    return model
