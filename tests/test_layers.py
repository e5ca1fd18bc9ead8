"""The package's floors (docs/DESIGN.md): no module imports a package on its own floor or a higher one,
function-local imports included. Read from the source; nothing is imported.

`python -m pytest tests/test_layers.py -q` after a move shows any arrow that runs back up.
"""

import ast
import os

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "egrpo_jax")

# top-level module or package folder of egrpo_jax -> floor (0 = bottom)
FLOORS = {
    "config": 0, "compile_cache": 0, "tokenizer_api": 0, "data": 0, "mesh": 0, "metrics_log": 0, "errors": 0, "runtime": 0,
    "models": 1, "checkpoint": 1, "rewards": 1,
    "sampling": 2, "tools": 2, "policy": 2,
    "agent": 3, "testing": 3,
    "assembly": 4, "datagen": 4,
    "rl": 5, "eval": 5,
    "e2e": 6,
    "commands": 7,
    "cli": 8,
}


def _unit(path: str) -> str:
    rel = os.path.relpath(path, PKG)
    head = rel.split(os.sep)[0]
    return head if os.sep in rel else head.removesuffix(".py")


def _imports(path: str) -> set[str]:
    """The egrpo_jax units `path` imports, anywhere in the file."""
    out = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names]
                                     if node.module == "egrpo_jax" else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "egrpo_jax" and len(parts) > 1:
                out.add(parts[1])
    return out


def _modules():
    for folder, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(folder, f)


def test_every_unit_has_a_floor():
    units = {_unit(p) for p in _modules()} - {"__init__"}
    assert units == set(FLOORS), sorted(units ^ set(FLOORS))


def test_no_import_runs_up_a_floor():
    up = []
    for path in _modules():
        src = _unit(path)
        if src == "__init__":
            continue
        for dst in _imports(path) - {src}:
            if FLOORS[dst] >= FLOORS[src]:
                up.append(f"{os.path.relpath(path, PKG)} (floor {FLOORS[src]}) imports {dst} (floor {FLOORS[dst]})")
    assert not up, "\n".join(up)


def test_config_imports_nothing_of_the_project():
    assert _imports(os.path.join(PKG, "config.py")) == set()
