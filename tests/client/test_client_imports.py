"""Import structure of the client, the server and the protocol they share (issue 13).

``keeldb.client`` imports nothing from ``keeldb.server`` (the wire protocol lives in
``keeldb.protocol``), and no import cycle runs through the client, the transport, the
protocol or the server, counting imports inside functions too (only imports under
``if TYPE_CHECKING:`` are exempt).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import keeldb

ROOT = Path(keeldb.__file__).parent
AREA = (
    "keeldb.server",
    "keeldb.protocol",
    "keeldb.client",
    "keeldb.aclient",
    "keeldb.transport",
    "keeldb._version",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _in_area(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in AREA)


def import_graph() -> dict[str, set[str]]:
    """Module → the keeldb modules it imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        edges = graph.setdefault(module, set())
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names]
                targets = [t if t in paths else base for t in targets]
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking() -> None:
    """The checker itself: a lazy import is an edge, a TYPE_CHECKING import is not."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
        "def f():\n    import c\n"
    )
    assert sorted(alias.name for n in _imports(tree) for alias in n.names) == [
        "TYPE_CHECKING",
        "b",
        "c",
    ]
    assert _cycles({"x": {"y"}, "y": {"x"}, "z": {"x"}}) == [{"x", "y"}]


def test_no_import_cycle_runs_through_the_client_protocol_or_server() -> None:
    cycles = [sorted(c) for c in _cycles(import_graph()) if any(_in_area(m) for m in c)]
    assert cycles == []


@pytest.mark.parametrize("client", ["keeldb.client", "keeldb.aclient"])
def test_the_client_imports_nothing_from_the_server_package(client: str) -> None:
    graph = import_graph()
    reachable: set[str] = set()
    todo = [client]
    while todo:
        module = todo.pop()
        if module not in reachable:
            reachable.add(module)
            todo.extend(graph.get(module, ()))
    # The graph does follow the client's imports.
    assert {"keeldb.protocol.wire", "keeldb.protocol.calls"} <= reachable
    assert sorted(m for m in reachable if m.startswith("keeldb.server")) == []


def test_importing_the_clients_loads_no_server_module() -> None:
    code = (
        "import sys, keeldb.client, keeldb.aclient\n"
        "keeldb.Client, keeldb.AsyncClient\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['keeldb', 'server']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_httpx_is_imported_only_when_an_async_client_is_made() -> None:
    code = (
        "import sys, keeldb, keeldb.aclient\n"
        "keeldb.AsyncClient\n"
        "print('httpx' in sys.modules)\n"
        "keeldb.AsyncClient('http://127.0.0.1:9')\n"
        "print('httpx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
