"""The module map of DESIGN section 2, held by the code: imports point one way and no module imports itself back.

The graph is read from the source (every ``import``, at module level or inside a function: a circle through a
local import is still a circle a reader must untangle), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocols", "drivers", "simulators", "station")
#: which top-level packages each may import (DESIGN section 2: station -> drivers -> protocols,
#: station -> simulators -> protocols)
ALLOWED = {
    "protocols": {"protocols"},
    "drivers": {"drivers", "protocols"},
    "simulators": {"simulators", "protocols"},
    "station": {"station", "drivers", "simulators", "protocols"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports: ``from a.b import c`` names module a.b.c when it is one, else a.b
    (importing a submodule runs its package's ``__init__`` too, but that is how every submodule is reached and not
    a dependency of the importer on the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        edges[name] = {m for m in _imports(path, name, set(files)) if m in files and m != name}
    return edges


def test_packages_import_only_downwards():
    wrong = sorted(f"{a} imports {b}" for a, targets in graph().items() for b in targets
                   if b.split(".")[0] not in ALLOWED[a.split(".")[0]])
    assert wrong == []


def test_no_module_imports_itself_back():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert circles == []
