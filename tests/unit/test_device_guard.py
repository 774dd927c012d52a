"""Device guard (issue 11): every tensor made in ``src/`` is made on the device where it is used.

A tensor factory call (``torch.zeros``, ``ones``, ``arange``, ``randn``, ``rand``, ``full``, ``tensor``, ``empty``,
``eye``, ``linspace``, and their ``*_like`` cousins are exempt: they inherit the device) must pass ``device=``, or be
moved with ``.to(...)`` in the same expression, or carry a ``# cpu-ok: why`` comment on its line or the line above
saying why the tensor belongs on the CPU. This is how a bug that only shows on a GPU fails CPU-only CI.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "steerscope"
FACTORIES = {"zeros", "ones", "arange", "randn", "rand", "randint", "full", "tensor", "empty", "eye", "linspace",
             "as_tensor"}
ALLOW = "cpu-ok:"


def _is_factory(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch")


def _moved(node: ast.Call, parents: dict[ast.AST, ast.AST]) -> bool:
    """True if some enclosing expression (before the statement) calls ``.to(...)`` / ``.cuda()`` on it."""
    current = node
    while current in parents and not isinstance(parents[current], ast.stmt):
        parent = parents[current]
        if (isinstance(parent, ast.Attribute) and parent.attr in ("to", "cuda")
                and parent.value is current and isinstance(parents.get(parent), ast.Call)):
            return True
        current = parent
    return False


def violations(path: Path) -> list[str]:
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not _is_factory(node):
            continue
        if any(k.arg == "device" for k in node.keywords) or _moved(node, parents):
            continue
        line = node.lineno
        nearby = lines[line - 2: node.end_lineno]  # the line above through the call's last line
        if any(ALLOW in chunk for chunk in nearby):
            continue
        found.append(f"{path.relative_to(SRC.parent)}:{line}: {lines[line - 1].strip()}")
    return found


def test_tensor_factories_say_where_their_tensor_lives():
    found = [v for path in sorted(SRC.rglob("*.py")) for v in violations(path)]
    assert not found, "tensor created without device= (add device=..., .to(...), or '# cpu-ok: why'):\n" + "\n".join(
        found)


def test_the_guard_catches_what_it_should(tmp_path):
    sample = tmp_path / "steerscope" / "x.py"
    sample.parent.mkdir()
    sample.write_text(
        "import torch\n"
        "a = torch.zeros(3)\n"  # caught
        "b = torch.zeros(3, device=x.device)\n"
        "c = torch.arange(4).to(x.device)\n"
        "d = (torch.ones(2) * 3).to(x)\n"
        "# cpu-ok: a seed for the CPU generator\n"
        "e = torch.randn(3)\n"
        "f = torch.tensor([1.0]) + y\n"  # caught
    )
    global SRC
    old, SRC = SRC, tmp_path / "steerscope"
    try:
        got = violations(sample)
    finally:
        SRC = old
    assert [g.split(":")[1] for g in got] == ["2", "8"]


def test_no_module_switches_the_matplotlib_backend_or_uses_pyplot():
    """Plots are bare ``matplotlib.figure.Figure`` objects (``io.subplots``): the user's backend and pyplot state
    are theirs (issue 14)."""
    offenders = [f"{p.relative_to(SRC.parent)}" for p in sorted(SRC.rglob("*.py"))
                 if "matplotlib.use(" in p.read_text() or "matplotlib.pyplot" in p.read_text().replace(
                     '"matplotlib.pyplot" in sys.modules', "").replace('sys.modules["matplotlib.pyplot"]', "")]
    assert not offenders, f"modules that use pyplot or switch the backend: {offenders}"
