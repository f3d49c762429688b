"""Layering: no import cycle anywhere in the package, and every module imports alone (no
import-time side effect that depends on another module having been imported first)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import sidecar

ROOT = Path(sidecar.__file__).parent
# sidecar.__main__ is `python -m sidecar`: importing it runs the command line, by design.
MODULES = sorted(m.name for m in pkgutil.walk_packages(sidecar.__path__, "sidecar.")
                 if m.name != "sidecar.__main__")

# Imports each module in a clean `sidecar` namespace: third-party packages stay loaded (they
# are not ours to check), every sidecar module is forgotten before the next import.
_ALONE = """
import importlib, sys, traceback
failed = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "sidecar" or m.startswith("sidecar.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc()[-400:]
for name, error in failed.items():
    print(name, error, sep="\\n")
sys.exit(1 if failed else 0)
"""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the sidecar modules it imports (any import: at the top, in a function, or under
    TYPE_CHECKING), with the packages each import loads on the way."""
    files = {module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}

    def loaded(dotted: str) -> list[str]:
        parts = dotted.split(".")
        return [n for i in range(2, len(parts) + 1) if (n := ".".join(parts[:i])) in files]

    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sidecar"):
                assert node.module is not None
                targets = loaded(node.module)
                targets += [f"{node.module}.{a.name}" for a in node.names
                            if f"{node.module}.{a.name}" in files]
            elif isinstance(node, ast.Import):
                targets = [t for a in node.names if a.name.startswith("sidecar")
                           for t in loaded(a.name)]
            # a module's own packages are loaded before it: importing them is no cycle
            graph[name].update(t for t in targets
                               if t != name and not name.startswith(t + "."))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check below can fail: a two-module loop and a three-module loop are both found."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(cycles(graph)) == [["a", "b"], ["c", "d", "e"]]


def test_no_import_cycle_in_the_package() -> None:
    """No module reaches itself through its imports, TYPE_CHECKING and local imports included."""
    graph = import_graph()
    assert len(graph) > 100
    assert cycles(graph) == []


def test_every_module_imports_alone() -> None:
    """Each module imports with no other sidecar module loaded before it."""
    assert len(MODULES) > 100
    result = subprocess.run([sys.executable, "-c", _ALONE, *MODULES], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
