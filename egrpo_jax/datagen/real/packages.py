"""Locate data files inside optional installed packages without importing (or copying) their code."""

from __future__ import annotations

import importlib.util
import os

REALDATA_HINT = "pip install 'egrpo-jax[realdata]'"


class MissingPackage(RuntimeError):
    pass


def package_dir(dist: str, module: str) -> str:
    """The folder of an installed top-level package; a clear error naming what to install if missing."""
    spec = importlib.util.find_spec(module)  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(
            f"the real-world data needs the '{dist}' package, which is not installed: "
            f"run `{REALDATA_HINT}` (or `pip install {dist}`)"
        )
    return next(iter(spec.submodule_search_locations))


def data_file(dist: str, module: str, *parts: str) -> str:
    path = os.path.join(package_dir(dist, module), *parts)
    if not os.path.exists(path):
        raise MissingPackage(f"{path}: not found in the installed '{dist}' package; reinstall it with `pip install -U {dist}`")
    return path
