"""The package's layers: imports point one way (core <- spine <- cases <- apps <- the facade)
and close no cycle, function-level imports included; no module is far over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "fembone"
LAYERS = {"core": 0, "spine": 1, "cases": 2, "apps": 3}
FACADE = 4  # fembone/__init__.py and fembone/__main__.py


def _module(f: Path) -> str:
    parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(f): f for f in sorted(ROOT.rglob("*.py"))}


def _layer(mod: str) -> int:
    parts = mod.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 and parts[1] in LAYERS else FACADE


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> fembone modules it imports anywhere in its body (module or function level)."""
    graph: dict[str, set[str]] = {}
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != m:
                    deps.add(n)
                    break
        graph[m] = deps
    return graph


def test_every_module_belongs_to_a_layer():
    stray = [m for m in _modules() if _layer(m) == FACADE and m not in ("fembone", "fembone.__main__")]
    assert not stray, f"modules outside core/spine/cases/apps: {stray}"


def test_imports_never_point_up_a_layer():
    graph = _imports(_modules())
    bad = [
        f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
        for m, deps in graph.items() for d in sorted(deps)
        if _layer(d) > _layer(m) and not m.startswith(d + ".")
    ]
    # a package's own __init__ importing its submodules is the package, not an upward import;
    # but a submodule importing the facade 'fembone' (e.g. for __version__) is upward
    bad += [f"{m} imports the facade 'fembone'" for m, deps in graph.items() if "fembone" in deps and m != "fembone.__main__"]
    assert not bad, "imports pointing up a layer:\n" + "\n".join(bad)


def test_no_import_cycles():
    mods = _modules()
    # a package's __init__ and its own submodules are one unit (importing a submodule runs it)
    graph = {m: {d for d in deps if not d.startswith(m + ".") and not m.startswith(d + ".")}
             for m, deps in _imports(mods).items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        state[v] = 1
        stack.append(v)
        for w in graph[v]:
            if state.get(w) == 1:
                cycles.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in graph:
        if v not in state:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_layer_test_catches_an_upward_import():
    """The check itself can fail: a core module importing the spine layer is reported."""
    graph = {"fembone.core.mesh": {"fembone.spine.risk"}, "fembone.spine.risk": set()}
    bad = [(m, d) for m, deps in graph.items() for d in deps if _layer(d) > _layer(m)]
    assert bad == [("fembone.core.mesh", "fembone.spine.risk")]


@pytest.mark.parametrize("limit", [650])
def test_modules_are_of_readable_size(limit):
    big = {m: n for m, f in _modules().items() if (n := len(f.read_text().splitlines())) > limit}
    assert not big, f"modules over {limit} lines: {big}"
