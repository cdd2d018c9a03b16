"""The import structure of src/aelab: every import (top level and inside functions, read with the AST) goes from a
package to one of a lower layer, and no module imports itself through a circle."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Layers, lowest first: a package imports only packages of lower layers (and its own modules); the root package
# `aelab` (CONF_DIR, the moved-paths table) may be imported by every layer and imports only core.
LAYERS = [
    {"core"},
    {"data", "nets", "bottlenecks", "metrics", "tracking"},
    {"losses"},
    {"models"},
    {"densities", "baselines", "evals"},
    {"callbacks", "reporting"},
    {"commands", "explore"},
    {"cli", "__main__", "api"},  # entry points: the command line's and Python's (aelab.api), neither imports the other
    {"aelab_plugins"},  # hydra_plugins.aelab_plugins: the SLURM launcher and the Optuna sweeper, which Hydra loads
]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def imports() -> dict[str, set[str]]:
    """Module -> the aelab modules it imports (anywhere in the file); `from aelab.x import y` counts aelab.x.y
    when that is a module."""
    modules = {module_name(p) for p in SRC.rglob("*.py")}
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        found[module_name(path)] = {n for n in names if n in modules}
    return found


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "aelab"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_has_a_layer() -> None:
    packages = {package(m) for m in imports()} - {"aelab"}
    assert packages == set(LEVEL), f"not in LAYERS: {packages - set(LEVEL)}; gone: {set(LEVEL) - packages}"


def test_imports_go_down_the_layers() -> None:
    against = []
    for module, targets in sorted(imports().items()):
        for target in sorted(targets):
            source, dest = package(module), package(target)
            if source == dest or dest == "aelab" and source != "aelab":
                continue
            if source == "aelab" and dest != "core" or source != "aelab" and LEVEL[dest] >= LEVEL[source]:
                against.append(f"{module} imports {target}")
    assert not against, "\n".join(against)


def test_no_module_imports_itself_through_a_circle() -> None:
    graph = imports()
    for module in graph:  # a package's __init__ that re-exports its modules is not a circle with them
        graph[module] = {t for t in graph[module] if not module.startswith(f"{t}.")}
    assert not cycles(graph), cycles(graph)


def test_the_circle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
