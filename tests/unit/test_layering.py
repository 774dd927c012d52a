"""Imports flow one way (DESIGN.md): a module never imports one of a later layer, not even inside a function.

    errors/vector/sites → models → inputs → hooks → steer → layers/generate → configs/methods → evaluate → export →
    runs/report → app → cli

So methods are pure (they never import evaluate, report, runs or app), evaluations never write run directories,
the report never runs a method, and nothing imports the CLI.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "steerscope"
# layer of each top-level module or package (the helpers every layer may use sit at 0)
ORDER = [
    {"errors", "vector", "sites", "io", "data", "orthogonal", "__init__"},
    {"models"},
    {"inputs"},
    {"hooks"},
    {"steer"},
    {"layers", "generate", "completions", "samples"},
    {"configs", "results", "plots", "methods"},
    {"evaluate"},
    {"export"},
    {"runs", "report"},
    {"app"},
    {"cli", "__main__"},
]
LAYER = {name: i for i, names in enumerate(ORDER) for name in names}


def _top(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported(path: Path) -> set[str]:
    """Top-level steerscope modules a file imports (absolute or relative, at any depth of the file)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(SRC).parent.parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(package[: len(package) - (node.level - 1)]) if node.level > 1 else list(package)
                parts = base + (node.module.split(".") if node.module else [])
                if parts:
                    found.add(parts[0])
                else:  # "from . import x" at the package root
                    found.update(a.name for a in node.names)
            elif node.module and node.module.split(".")[0] == "steerscope":
                parts = node.module.split(".")
                found.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "steerscope" and len(parts) > 1:
                    found.add(parts[1])
    return found


# the package's __init__ is the public surface: it names everything (lazily), so it is the one exception
FILES = sorted(p for p in SRC.rglob("*.py") if _top(p) in LAYER and p != SRC / "__init__.py")


def test_every_module_has_a_layer():
    tops = {_top(p) for p in SRC.rglob("*.py")}
    assert tops <= set(LAYER), f"place these modules in ORDER: {sorted(tops - set(LAYER))}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_one_way(path):
    mine = LAYER[_top(path)]
    later = {name for name in _imported(path) if name in LAYER and LAYER[name] > mine and name != "__init__"}
    assert not later, f"{path.relative_to(SRC)} (layer {mine}) imports later layers: {sorted(later)}"
