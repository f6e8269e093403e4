"""The package's layering, checked: no import cycles inside `instrument/`, and no private
name of one module used by another (if another module needs it, it is public there)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "instrument"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` in *module* names."""
    if not node.level:
        return node.module or ""
    base = (module if is_package else module.rpartition(".")[0]).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base) + ("." + node.module if node.module else "")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _Imports(ast.NodeVisitor):
    """Every instrument module one module imports (at any depth, lazily too; not for type
    checking only), and the private names it takes from others."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.is_package = is_package
        self.imports: set[str] = set()
        self.aliases: dict[str, str] = {}
        self.privates: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in MODULES:
                self.imports.add(alias.name)
                self.aliases[alias.asname or alias.name] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        target = _target(self.module, node, self.is_package)
        if target not in MODULES:
            return
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            if submodule in MODULES:
                self.imports.add(submodule)
                self.aliases[alias.asname or alias.name] = submodule
            else:
                self.imports.add(target)
                if _private(alias.name) and target != self.module:
                    self.privates.add(f"from {target} import {alias.name}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.aliases:
            owner = self.aliases[node.value.id]
            if _private(node.attr) and owner != self.module:
                self.privates.add(f"{owner}.{node.attr}")
        self.generic_visit(node)


def _scan() -> dict[str, _Imports]:
    scanned = {}
    for module, path in MODULES.items():
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text()))
        visitor.imports.discard(module)
        scanned[module] = visitor
    return scanned


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


class TestLayers:
    def test_no_import_cycles(self):
        """No module imports, even lazily, a module that imports it back."""
        scanned = _scan()
        assert [] == _cycles({module: visitor.imports for module, visitor in scanned.items()})

    def test_no_private_name_is_used_outside_its_module(self):
        found = sorted(f"{module}: {use}" for module, visitor in _scan().items() for use in visitor.privates)
        assert [] == found

    def test_the_checks_see_what_they_look_for(self):
        """Guard against a checker that finds nothing: known edges and a known cycle shape."""
        scanned = _scan()
        assert "instrument._record" in scanned["instrument._decorate"].imports
        assert [["a", "b"]] == _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
