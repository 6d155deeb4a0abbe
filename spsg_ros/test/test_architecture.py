"""Imports go one way: a test walks the package's import graph (AST) and fails on an
upward import, an import between sibling subpackages, or a cycle among modules.

Layers, bottom to top (a module may import its own subpackage and lower layers):
geometry, images, config, parameters -> networks -> features -> matching -> backends
-> frontend, export -> messages -> datasets, ros -> bagio -> evaluation -> cli. Imports under
``if TYPE_CHECKING:`` (annotations only) do not count; imports inside functions do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spsg_ros"
LAYERS = [
    {"geometry", "images", "config", "parameters", "visualization", "stop_signals"},
    {"networks"},
    {"features"},
    {"matching"},
    {"backends"},
    {"frontend", "export"},
    {"messages"},
    {"datasets", "ros"},
    {"bagio"},
    {"evaluation"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def unit_of(module: str) -> str:
    """'spsg_ros.frontend.pipeline' -> 'frontend'; 'spsg_ros.config' -> 'config'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return skipped


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported spsg_ros module) of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("spsg_ros")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("spsg_ros"):
                continue
            # 'from .. import parameters' names a module, 'from .x import f' a function:
            # keep both, the graph trims each to the longest module path that exists
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return found


def import_graph() -> dict[str, list[tuple[int, str]]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = []
        for line, target in imports_of(path):
            # 'spsg_ros.frontend.config.load_config' -> the longest module prefix that exists
            parts = target.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts:
                edges.append((line, ".".join(parts)))
        graph[name] = edges
    return graph


def test_every_subpackage_has_a_layer():
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units <= set(RANK), f"no layer for {sorted(units - set(RANK))}: add it to LAYERS"


def test_imports_go_one_way():
    problems = []
    for module, edges in sorted(import_graph().items()):
        source = unit_of(module)
        for line, target in sorted(set(edges)):
            dest = unit_of(target)
            if dest in (source, "__init__") or source == "__init__":
                continue
            if RANK[dest] >= RANK[source]:
                kind = "sibling" if RANK[dest] == RANK[source] else "upward"
                problems.append(f"{module}:{line} imports {target} ({kind}: {source} -> {dest})")
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_no_import_cycles():
    graph = {m: sorted({t for _, t in edges if t != m}) for m, edges in import_graph().items()}
    # packages import their modules in __init__; a module importing its own package's
    # __init__ is not a cycle of code, so package nodes are left out
    packages = {
        p for p in graph if (PACKAGE.parent / p.replace(".", "/") / "__init__.py").exists()
    }
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if nxt in packages:
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state and node not in packages:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from ..backends.base import Backend\n", ["spsg_ros.backends.base.Backend"]),
        ("from . import conversions\n", ["spsg_ros.frontend.conversions"]),
        ("def f():\n    from ..ros import worker\n", ["spsg_ros.ros.worker"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cli import main\n", []),
    ],
)
def test_import_reader(tmp_path, monkeypatch, source, expected):
    """The reader finds relative, function-level imports and skips TYPE_CHECKING ones."""
    folder = tmp_path / "spsg_ros" / "frontend"
    folder.mkdir(parents=True)
    path = folder / "probe.py"
    path.write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "spsg_ros")
    assert [target for _, target in imports_of(path)] == expected
