"""The shape of the code, read from its source: the import graph of the core (`backroom`) has no circle,
only repositories talk to AWS, and the core never imports a dialect.

Every import counts: at module level, inside a function (the lazy imports that keep cold starts
small) and under `TYPE_CHECKING` (a circle of types is a circle of design all the same).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "layers" / "core" / "python"
# The modules that may call AWS: the client factory, the DynamoDB table and S3 file store, and the
# repositories of each concept (a module named `repository`, and the job queue on SQS).
AWS_MODULES = {"backroom.aws", "backroom.dynamo", "backroom.files", "backroom.jobs.queue"}
DIALECTS = "backroom.api"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((CORE / "backroom").rglob("*.py"))}


def imported(name: str) -> Iterator[str]:
    """Every module `name` imports, wherever in the file the import is."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def core_imports(name: str) -> set[str]:
    return {m for m in imported(name) if m in MODULES and m != name}


def circles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph = {name: core_imports(name) for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
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

    for name in graph:
        if name not in index:
            visit(name)
    return found


def test_the_reader_finds_the_core_and_its_imports() -> None:
    # The checks below are only as good as the graph: it must see the modules and the lazy imports.
    assert {"backroom.wiring", "backroom.jobs.engine", "backroom.app.service"} <= set(MODULES)
    assert "backroom.app.service" in core_imports("backroom.wiring")  # imported inside a method


def test_the_core_import_graph_has_no_circle() -> None:
    assert circles() == []


def test_only_repositories_import_boto3_or_botocore() -> None:
    talking = {
        name
        for name in MODULES
        if any(m.split(".")[0] in ("boto3", "botocore") for m in imported(name))
        and name not in AWS_MODULES
        and name.rpartition(".")[2] != "repository"
    }
    assert talking == set()


def test_the_core_never_imports_a_dialect() -> None:
    core = [name for name in MODULES if not name.startswith(DIALECTS)]
    reaching = {name: sorted(m for m in core_imports(name) if m.startswith(DIALECTS)) for name in core}
    assert {name: found for name, found in reaching.items() if found} == {}
