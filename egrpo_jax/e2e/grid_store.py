"""A replicate grid's finished runs kept in a tracked folder, so a grid longer than one session resumes
on another day or machine without its run folder (checkpoints are not kept in git, records are).

`<dir>/start.json` holds the SFT start's records and the grid's fingerprint; `<dir>/runs/<name>.json`
one (arm, seed) run's record. A record is reused only under the same fingerprint: the SHA-256 of
the SFT start's parameters (equal only if data, SFT config and the machine's arithmetic reproduce
it bit for bit) and of the RL and pipeline settings. Anything else would pair runs that do not
share a start, so a mismatch is an error, never a silent re-run or mix.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from egrpo_jax.runtime import machine_facts

START = "start.json"


def params_sha256(model) -> str:
    """SHA-256 over the policy's parameters (path, dtype, shape and bytes of every leaf, in tree order)."""
    import jax
    import numpy as np
    from flax import nnx

    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]:
        a = np.asarray(jax.device_get(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Config keys (or sections) added after grids were recorded, each with the switch and value under which the
# run is exactly as before they existed: then the key is left out of the settings fingerprint, so the
# recorded grids can still be continued; any other value is another setting and changes the fingerprint.
KEYS_ADDED = {"rl.reward": ("rl.reward", "egrpo"), "rl.entity_credit": ("rl.entity_credit", "thought"),
              "model.lora": ("model.lora.rank", 0)}  # key -> (the key that switches it, its neutral value)


def _get(cfg, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def settings_sha256(rl_config, pipeline_settings) -> str:
    """SHA-256 of the RL config (less KEYS_ADDED while neutral) and the pipeline settings."""
    cfg = copy.deepcopy(rl_config)
    with cfg.unlocked():
        for key, (switch, neutral) in KEYS_ADDED.items():
            *path, leaf = key.split(".")
            if _get(cfg, switch) == neutral:
                del _get(cfg, ".".join(path))[leaf]
    return _sha256(cfg.to_json(sort_keys=True) + json.dumps(dataclasses.asdict(pipeline_settings), sort_keys=True,
                                                            default=str))


def fingerprint(model, sft_per_question: Mapping[str, Any], rl_config, pipeline_settings) -> dict[str, str]:
    """What a record must share to be paired with this grid's runs: the SFT start's parameters, its
    per-question test scores, and the RL config as the config file and overrides give it (before run
    paths are filled in) with the pipeline settings (world, demos, tools, evaluation)."""
    return {"sft_params": params_sha256(model), "sft_eval": _sha256(json.dumps(sft_per_question, sort_keys=True)),
            "settings": settings_sha256(rl_config, pipeline_settings)}


def _commit() -> str:
    """The code's git commit, for the record's provenance (not part of the fingerprint)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=os.path.dirname(__file__),
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _machine_line(m: Mapping[str, Any]) -> str:
    return (f"{m.get('cpu', '?')} [{'+'.join(m.get('isa') or ['?'])}], {m.get('cores', '?')} cores, "
            f"XLA_FLAGS={m.get('xla_flags', '')!r}, arithmetic probe {m.get('probe', '(not recorded)')}")


def check_arithmetic(directory: str | os.PathLike) -> None:
    """Before an SFT start is trained again to continue the grid recorded in `directory`: the recorded
    machine's arithmetic probe (runtime.arithmetic_probe) must be this machine's, or the start cannot
    reproduce and the fingerprint would refuse it half an hour later. Records without a probe (before
    it was kept) are left to the fingerprint."""
    start = Path(directory) / START
    if not start.is_file():
        return
    machine = json.loads(start.read_text()).get("machine")
    if not isinstance(machine, dict) or "probe" not in machine:
        return
    here = machine_facts()
    if machine["probe"] != here["probe"]:
        raise ValueError(f"{start}: recorded on {_machine_line(machine)}; this is {_machine_line(here)}: the "
                         "arithmetic differs, so the SFT start cannot be reproduced and its runs cannot be continued "
                         "here: run on a machine like the recorded one (cores: taskset) or choose another --docs folder")


DATA_FILES = ("train.jsonl", "dev.jsonl", "test.jsonl", "rl.jsonl", "corpus.jsonl", "sft_demos.jsonl",
              "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json")


def data_sha256(data_dir: str | os.PathLike) -> str:
    """SHA-256 over the pipeline data the start is trained from (splits, corpus, demos, tokenizer; the
    files present of DATA_FILES, each named): built deterministically from seeds, so equal on every
    machine unless the build itself depends on the machine."""
    h = hashlib.sha256()
    for name in DATA_FILES:
        path = Path(data_dir) / name
        if path.is_file():
            h.update(f"{name}|{path.stat().st_size}|".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def check_data(directory: str | os.PathLike, data_dir: str | os.PathLike) -> None:
    """After the data are built and before the SFT start is trained: the grid recorded in `directory`
    must have been trained from the same data (grids recorded before the hash was kept: not checked)."""
    start = Path(directory) / START
    want = json.loads(start.read_text()).get("data_sha256") if start.is_file() else None
    got = data_sha256(data_dir)
    if want and want != got:
        raise ValueError(f"{start}: recorded from other data (data_sha256 {want[:16]}, {data_dir} gives {got[:16]}): "
                         "the data build differs (config, code or machine), so the SFT start cannot be reproduced: "
                         "choose another --docs folder")


SFT_CHECK_STEPS = 10  # ~30 s of SFT on 2 cores: a step's loss carries the previous steps' update bits


def sft_losses(log_dir: str | os.PathLike) -> list[list[float]]:
    """[[step, loss], ...] of the SFT start's first SFT_CHECK_STEPS steps, from its metrics log (kept in
    start.json so that a call on another machine learns in seconds that it cannot reproduce the start)."""
    path = Path(log_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [[int(r["step"]), float(r["loss"])] for r in rows if "loss" in r and r["step"] <= SFT_CHECK_STEPS]


def sft_loss_check(directory: str | os.PathLike) -> Callable[[int, Mapping[str, float]], None] | None:
    """An SFT `after_step` hook that stops the SFT start's training at the first step whose loss is not
    the recorded one: the arithmetic probe is equal on machines whose training steps still differ
    (measured: an Intel Xeon 6/207 and an AMD EPYC 26/2, both pinned, same probe, different starts),
    and the fingerprint would refuse only after the whole SFT. None when nothing is recorded."""
    start = Path(directory) / START
    if not start.is_file():
        return None
    head = json.loads(start.read_text())
    want = {int(k): float(v) for k, v in head.get("sft_losses") or []}
    if not want:
        return None

    def check(step: int, metrics: Mapping[str, float]) -> None:
        if step in want and float(metrics["loss"]) != want[step]:
            raise ValueError(f"{start}: SFT step {step} loss {float(metrics['loss'])!r}, recorded {want[step]!r} "
                             f"(recorded on {_machine_line(head.get('machine') or {})}; this is "
                             f"{_machine_line(machine_facts())}): this machine does not reproduce the SFT start, so "
                             "the grid cannot be continued here: choose another --docs folder")

    return check


class RunStore:
    """Finished run records under `directory`, all from the start named by `fingerprint`."""

    def __init__(self, directory: str | os.PathLike, fingerprint: Mapping[str, str]):
        self.dir = Path(directory)
        self.fingerprint = dict(fingerprint)
        start = self.dir / START
        if start.is_file():
            head = json.loads(start.read_text())
            self._check(start, head.get("fingerprint"), head.get("machine"))

    def _check(self, path: Path, got: Any, machine: Any = None) -> None:
        got = got if isinstance(got, dict) else {}
        diff = sorted(k for k in set(got) | set(self.fingerprint) if got.get(k) != self.fingerprint.get(k))
        if diff:
            # the machine is named because another CPU's arithmetic is the usual cause (runtime.py)
            where = (f"; recorded on {_machine_line(machine)}, this is {_machine_line(machine_facts())}"
                     if isinstance(machine, dict) else "")
            raise ValueError(f"{path}: recorded from another start ({', '.join(diff)} differ: {got.get(diff[0])} vs "
                             f"{self.fingerprint.get(diff[0])}{where}); its runs cannot be paired with this call's: "
                             "choose another --docs folder")

    def put_start(self, records: Mapping[str, Any]) -> None:
        """Write start.json. A start that is already recorded (its fingerprint matched in __init__, so
        this call reproduced it bit for bit) keeps the commit and machine that first trained it; a
        machine that reproduced it is added to `reproduced_on`, so continuing a grid elsewhere never
        rewrites where the start came from."""
        self.dir.mkdir(parents=True, exist_ok=True)
        here = {"commit": _commit(), "machine": machine_facts()}
        path = self.dir / START
        head = {**here, "reproduced_on": []}
        if path.is_file():
            old = json.loads(path.read_text())
            head = {"commit": old.get("commit"), "machine": old.get("machine"),
                    "reproduced_on": list(old.get("reproduced_on", []))}
            if here["machine"] != head["machine"] and all(here["machine"] != r.get("machine")
                                                          for r in head["reproduced_on"]):
                head["reproduced_on"].append(here)
        self._write(path, {"fingerprint": self.fingerprint, **head, **records})

    def get(self, name: str) -> dict | None:
        path = self.dir / "runs" / f"{name}.json"
        if not path.is_file():
            return None
        rec = json.loads(path.read_text())
        self._check(path, rec.pop("fingerprint", None), rec.get("machine"))
        rec.pop("commit", None)
        rec.pop("machine", None)
        return rec

    def put(self, name: str, record: Mapping[str, Any]) -> None:
        (self.dir / "runs").mkdir(parents=True, exist_ok=True)
        self._write(self.dir / "runs" / f"{name}.json", {"fingerprint": self.fingerprint, "commit": _commit(),
                                                          "machine": machine_facts(), **record})

    @staticmethod
    def _write(path: Path, obj: Mapping[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")  # a crash mid-write leaves the old record, never half a file
        tmp.write_text(json.dumps(obj, default=float, sort_keys=True) + "\n")
        os.replace(tmp, path)


def recorded_runs(directory: str | os.PathLike) -> list[dict]:
    """The SFT start's record and every run recorded under `directory`, each checked against the start's
    fingerprint (for a report of a grid without its run folder: nothing is trained or evaluated)."""
    start = Path(directory) / START
    if not start.is_file():
        raise FileNotFoundError(f"{start}: no such file (a folder of `egrpo replicate --docs` records has one)")
    head = json.loads(start.read_text())
    store = RunStore(directory, head["fingerprint"])
    return [head["sft"], *(store.get(p.stem) for p in sorted((store.dir / "runs").glob("*.json")))]


def pooled_runs(directories: Sequence[str | os.PathLike]) -> list[dict]:
    """The records of several grids, each tagged with its folder's name as `start`: one grid per SFT start
    (one per machine whose arithmetic differs, runtime.py), pooled so that a report pairs runs by (start,
    seed) and each run with its own start. Grids of other settings or other test questions cannot be pooled."""
    out, first, names = [], None, set()
    for d in directories:
        name = Path(d).resolve().name
        if name in names:
            raise ValueError(f"{d}: a second grid named {name!r}: pooled grids need distinct folder names")
        names.add(name)
        records = recorded_runs(d)  # raises for a folder without start.json
        head = json.loads((Path(d) / START).read_text())
        key = (head["fingerprint"].get("settings"), sorted(records[0]["per_question"]))
        if first is None:
            first = (d, key)
        elif key != first[1]:
            what = "settings" if key[0] != first[1][0] else "test questions"
            raise ValueError(f"{Path(d) / START}: other {what} than {Path(first[0]) / START}: grids of one config "
                             "and data only can be pooled")
        out += [{**r, "start": name} for r in records]
    return out

