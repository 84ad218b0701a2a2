"""The import graph of the four parts, read with `ast` (no module is imported).

Every `import` and `from ... import` counts, at module level or inside a
function: a function-level import that closes a loop is still a cycle.
Fails on a cycle between modules of one part, and on an import between
parts that the contract forbids (docs/contracts.md, "Who imports whom"):
- desktop_app never imports server_stub;
- server_stub imports only the two wire formats of license_agent: the code
  module (license_agent.codes, with its vocabulary license_agent.code_terms) and the package format
  (license_agent.package_format);
- license_agent imports nothing of ours;
- installers may use any part.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("server_stub", "license_agent", "desktop_app", "installers")
# what server_stub may import of license_agent: the two wire formats
SERVER_MAY_IMPORT = {"license_agent", "license_agent.codes", "license_agent.code_terms", "license_agent.package_format"}
FORBIDDEN_PARTS = {
    "desktop_app": {"server_stub"},
    "license_agent": {"server_stub", "desktop_app", "installers"},
    "server_stub": {"desktop_app", "installers"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(part: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / part).rglob("*.py"))}


ALL_MODULES: dict[str, Path] = {}
for _part in PARTS:
    ALL_MODULES.update(_modules(_part))


def _resolve(name: str) -> str | None:
    """The module of ours a dotted name refers to (a module, or a name in one)."""
    while name:
        if name in ALL_MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    """Every module of ours that `module` imports, anywhere in its body."""
    path = ALL_MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # `from pkg import mod` imports the submodule; `from mod import name` the module
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.add(target)
    return found


def _part_of(module: str) -> str:
    return module.split(".")[0]


def _graph(part: str) -> dict[str, set[str]]:
    return {m: {t for t in imports_of(m) if _part_of(t) == part} for m in _modules(part)}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def forbidden(module: str, target: str) -> str | None:
    """Why `module` may not import `target` (None: it may)."""
    part, other = _part_of(module), _part_of(target)
    if other in FORBIDDEN_PARTS.get(part, ()):
        return f"{module} -> {target}"
    if part == "server_stub" and other == "license_agent" and target not in SERVER_MAY_IMPORT:
        return f"{module} -> {target} (only the code and package formats)"
    return None


def test_the_checker_itself():
    """A cycle closed by an import inside a function is read and found; the part rules bite."""
    assert find_cycles({"p.a": {"p.b"}, "p.b": {"p.a"}, "p.c": {"p.a"}}) == [["p.a", "p.b"]]
    assert find_cycles({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}) == [["p.a", "p.b", "p.c"]]
    assert find_cycles({"p.a": {"p.b"}, "p.b": set()}) == []
    # the real reader: a relative import (wallet -> ledger) ...
    assert "server_stub.services.ledger" in imports_of("server_stub.services.wallet")
    # ... and one inside a function (authenticate imports the db helpers there)
    assert "server_stub.db" in imports_of("server_stub.services.accounts")
    assert forbidden("server_stub.services.catalog", "license_agent.install_store")
    assert forbidden("server_stub.services.catalog", "license_agent.package_format") is None
    assert forbidden("desktop_app.app", "server_stub.demo")
    assert forbidden("license_agent.cli", "server_stub.vocabulary")
    assert forbidden("installers.build", "server_stub.demo") is None


@pytest.mark.parametrize("part", PARTS)
def test_no_import_cycle_inside_a_part(part):
    cycles = find_cycles(_graph(part))
    assert cycles == [], f"import cycles in {part}: {cycles}"


@pytest.mark.parametrize("part", PARTS)
def test_no_forbidden_import_between_parts(part):
    found = [forbidden(module, target) for module in sorted(_modules(part))
             for target in sorted(imports_of(module))]
    bad = [why for why in found if why]
    assert bad == [], f"forbidden imports from {part}: {bad}"
