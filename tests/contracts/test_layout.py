"""The layout rules of docs/architecture.md that import-linter cannot check.

- no import cycle between modules, counting imports inside functions (only imports
  under `if TYPE_CHECKING:` are left out: they never run);
- no private name (`_x`) imported from another module;
- no module of `appliance/` over 400 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("appliance", "tui")
LONGEST = 400


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def run_time_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level, in functions, in
    branches, but not under `if TYPE_CHECKING:`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def resolve(module: str, node: ast.ImportFrom, known: dict[str, Path]) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    is_package = known[module].name == "__init__.py"
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module → the project modules it imports at run time; and every private name
    imported from another module, as 'importer: module._name'."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    private: list[str] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in run_time_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = resolve(module, node, known)
                targets = []
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in known:
                        targets.append(sub)
                    else:
                        targets.append(source)
                        name = alias.name
                        private_name = name.startswith("_") and not name.startswith("__")
                        if private_name and source.split(".")[0] in PACKAGES:
                            private.append(f"{module}: {source}.{alias.name}")
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != module and target.split(".")[0] in PACKAGES:
                    edges[module].add(target)
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    edges, _ = graph()
    # A package's __init__ re-exporting its own modules is not a cycle of logic.
    for module in edges:
        edges[module] = {t for t in edges[module] if not module.startswith(f"{t}.")}
    assert cycles(edges) == []


def test_no_private_name_imported_from_another_module() -> None:
    _, private = graph()
    assert private == []


@pytest.mark.parametrize("package", ["appliance"])
def test_no_module_over_400_lines(package: str) -> None:
    long = {
        str(path.relative_to(REPO)): n
        for path in (REPO / package).rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST
    }
    assert long == {}


def test_the_checks_see_a_cycle_and_a_private_import() -> None:
    """The checker itself: a made-up graph with a cycle is reported; resolution of a
    relative import in a package works."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    tree = ast.parse("from .x import _y\nif TYPE_CHECKING:\n    import z\n")
    assert [type(n).__name__ for n in run_time_imports(tree)] == ["ImportFrom"]
