"""The architecture as DESIGN.md draws it, checked on the import graph so that it stays true.

- Roles (RA, TSA, status page, web repository, CVS, OCSP, repository, scheduler) never import each other, and the
  CA core never imports a role; only the CLI, which wires, may import them all.
- Only the storage layer imports SQLAlchemy, apart from migrations/ and the speed paths named
  in SQL_EXCEPTIONS (each also named in the README and in its own docstring).
- The stored rows (ca.storage.models) are handed out by the stores; the modules that still
  name a row type are listed in ROW_USERS, a list that may only shrink.  The vocabulary
  (kinds, roles, states) is ca.enums and the reasons ca.revocation.reasons: no storage needed.
- No import cycles, between packages or between modules.

Every import counts, including those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ca", "ocsp", "repository")
ROLES = ("ca.ra", "ca.tsa", "ca.status_page", "ca.scheduler", "ca.web", "ca.cvs", "ocsp", "repository")
WIRING = ("ca.cli", "ca.__main__")
STORAGE = "ca.storage"
# Modules outside ca/storage that may still touch the database directly, each with the reason
# in its docstring.  The list may only shrink.
SQL_EXCEPTIONS: frozenset[str] = frozenset()
# Modules outside ca/storage that name row types of ca.storage.models (the rows the stores
# return).  The list may only shrink: new code takes rows from a store, or value objects.
ROW_USERS = frozenset({
    "ca.ceremony", "ca.hierarchy", "ca.importing.importer",  # issue and import certificates, hand back their rows
    "ca.revocation.workflow", "ca.revocation.compromise",  # build Revocation rows in the caller's transaction
    "ca.ra.app", "ca.ra.auth", "ca.ra.online", "ca.ra.receipts",  # requests, terminals and operators as rows
    "ca.cli.ca_cmds",  # prints rows
})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _graph() -> dict[str, set[str]]:
    """Every module of ours and the absolute names it imports (ours and third-party)."""
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                imported.add(base)
                imported.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules)
        graph[name] = imported
    return graph


def _ours(graph: dict[str, set[str]], name: str) -> Iterator[str]:
    """The modules of ours that `name` imports (a package import counts as its __init__)."""
    for target in graph[name]:
        if target in graph and target != name:
            yield target


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _role_of(name: str) -> str | None:
    return next((r for r in ROLES if _within(name, r)), None)


def test_the_import_graph_sees_every_package() -> None:
    graph = _graph()
    assert {"ca.storage.models", "ocsp.responder", "repository.publisher", "ca.cli"} <= set(graph)
    assert "ca.storage.engine" in set(_ours(graph, "ca.cli.common"))


def test_roles_never_import_each_other_and_the_core_imports_no_role() -> None:
    graph = _graph()
    wrong = sorted(
        f"{name} imports {target}"
        for name in graph if not any(_within(name, w) for w in WIRING)
        for target in _ours(graph, name)
        if (role := _role_of(target)) is not None and role != _role_of(name)
    )
    assert not wrong, "\n".join(wrong)


def _importers(graph: dict[str, set[str]], prefix: str) -> set[str]:
    return {n for n, imported in graph.items() if not _within(n, STORAGE) and any(_within(t, prefix) for t in imported)}


def _check_shrinking_list(users: set[str], allowed: frozenset[str], what: str) -> None:
    """Nothing outside `allowed` does `what`, and `allowed` names nothing that stopped doing it."""
    new = sorted(users - allowed)
    assert not new, f"{what} and is not listed:\n" + "\n".join(new)
    stale = sorted(allowed - users)
    assert not stale, f"listed but no longer: {what} (remove them): {stale}"


def test_only_the_storage_layer_imports_sqlalchemy() -> None:
    _check_shrinking_list(_importers(_graph(), "sqlalchemy"), SQL_EXCEPTIONS,
                          "imports SQLAlchemy outside ca/storage")


def test_row_types_stay_where_they_are_named() -> None:
    _check_shrinking_list(_importers(_graph(), "ca.storage.models"), ROW_USERS,
                          "imports ca.storage.models rows (take them from a store; enums are in ca.enums)")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _package_of(name: str) -> str:
    """ca.audit.chain -> ca.audit; ca.hierarchy -> ca.hierarchy; ocsp.request -> ocsp."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "ca" else parts[0]


@pytest.mark.parametrize("level", ["module", "package"])
def test_there_are_no_import_cycles(level: str) -> None:
    graph = _graph()
    if level == "module":
        # a package's __init__ importing its own submodules is how packages re-export; not a cycle
        edges = {n: {t for t in _ours(graph, n) if not _within(t, n)} for n in graph}
    else:
        edges = {}
        for name in graph:
            for target in _ours(graph, name):
                a, b = _package_of(name), _package_of(target)
                if a != b:
                    edges.setdefault(a, set()).add(b)
    assert _cycles(edges) == []


def test_the_layering_check_finds_a_cycle_and_a_role_import() -> None:
    """The checks above would fail on a tangled graph (guards against a check that cannot fail)."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _role_of("ocsp.responder") == "ocsp" and _role_of("ca.ra.app") == "ca.ra"
    assert _role_of("ca.revocation.workflow") is None and _role_of("ca.rate") is None


def test_migrations_import_only_the_models() -> None:
    imported = set()
    for path in (ROOT / "migrations").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                imported.add(f"{path.name}: {node.module}")
    assert imported == {"env.py: ca.storage.models"}
