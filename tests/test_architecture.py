"""The shape of the house, read from the sources with :mod:`ast` (nothing is imported).

**The import graph.** Every ``.py`` under ``kdexplain/`` and ``analyses/`` is a module
(``pkg/__init__.py`` is the module ``pkg``). Every ``import`` statement counts, at the top of a
file or inside a function (an import inside a function runs as soon as the function is
called, so a circle through one is still a circle), except those under
``if TYPE_CHECKING:``, which never run. A statement makes its module depend on:

- ``import a.b.c`` and ``from a.b import c`` where ``a/b/c.py`` (or ``a/b/c/``) exists:
  the module ``a.b.c``;
- ``from a.b import name`` where ``name`` is not a submodule: the module ``a.b`` (the name
  comes from it, for a package from its ``__init__``);
- and, for either, every package above the target (``a``, ``a.b``) that is not also a
  package above the importing module: importing ``a.b.c`` runs ``a/b/__init__.py`` first,
  unless the importer lives inside ``a.b``, whose ``__init__`` has then already started.

So a package's ``__init__`` that imports its submodules, and a submodule that imports a
sibling (``from kdexplain.pipeline import binding``), make no circle; a submodule that takes a
name *defined* in its package's ``__init__`` while that ``__init__`` imports the submodule does,
and it is a real one (the name may not exist yet when the submodule runs). Lazy re-exports
(PEP 562 ``__getattr__`` calling ``importlib.import_module``) are not import statements and
make no edge: they run only when the name is used.

**Private names.** A name starting with one underscore belongs to its module. No module of
``kdexplain/`` or ``analyses/`` may take one from another module: neither
``from x import _y`` nor ``x._y`` where ``x`` is a kdexplain or analyses module it imported.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("kdexplain", "analyses")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    #: imported module -> the line of the first statement that imports it
    depends: dict[str, int] = field(default_factory=dict)
    #: "line: what" for each private name taken from another module
    private: list[str] = field(default_factory=list)


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def load_modules() -> dict[str, Module]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name, is_package = _module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            modules[name] = Module(name, path, is_package, tree)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _add(module: Module, target: str, line: int, modules: dict[str, Module]) -> None:
    inside = set(_ancestors(module.name)) | {module.name}
    for name in _ancestors(target):
        if name in modules and name not in inside:
            module.depends.setdefault(name, line)
    if target in modules and target != module.name:
        module.depends.setdefault(target, line)


def analyse(modules: dict[str, Module]) -> None:
    """Fill each module's ``depends`` and ``private``."""
    for module in modules.values():
        bound: dict[str, str] = {}  # local name -> the kdexplain/analyses module it is
        for node in _runtime_nodes(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] not in PACKAGES:
                        continue
                    _add(module, alias.name, node.lineno, modules)
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(module, node)
                if source.split(".")[0] not in PACKAGES:
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    if sub in modules:
                        _add(module, sub, node.lineno, modules)
                        bound[alias.asname or alias.name] = sub
                    else:
                        _add(module, source, node.lineno, modules)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        module.private.append(f"{node.lineno}: from {source} import {alias.name}")
        for node in _runtime_nodes(module.tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                dotted = _dotted(node.value, bound)
                if dotted in modules and dotted != module.name:
                    module.private.append(f"{node.lineno}: {dotted}.{node.attr}")


def _dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """``a.b.c`` with ``a`` a bound module name -> the module path it names, else None."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in bound:
        return None
    return ".".join([bound[node.id], *reversed(attrs)])


def find_cycles(modules: dict[str, Module]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each given as
    one circle through it, ``a -> b -> ... -> a``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in modules[v].depends:
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
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(modules):
        if v not in index:
            visit(v)
    return [_one_circle(c, modules) for c in components]


def _one_circle(component: list[str], modules: dict[str, Module]) -> list[str]:
    """A shortest circle from the component's first module back to it (breadth first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in modules[v].depends:
            if w == start:
                return paths[v] + [start]
            if w in members and w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return component  # pragma: no cover - a component always holds a circle


def _describe(circle: list[str], modules: dict[str, Module]) -> str:
    steps = [f"{a} (line {modules[a].depends[b]}) -> {b}"
             for a, b in zip(circle[:-1], circle[1:], strict=True)]
    return "\n    ".join(steps)


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    found = load_modules()
    analyse(found)
    return found


def test_no_import_cycle(modules):
    cycles = find_cycles(modules)
    assert not cycles, "import cycles (imports inside functions count):\n  " + "\n  ".join(
        _describe(c, modules) for c in cycles)


def test_no_private_name_crosses_a_module(modules):
    found = [f"{m.path.relative_to(REPO)}:{p}" for m in modules.values() for p in m.private]
    assert not found, "private names taken from another module:\n  " + "\n  ".join(found)


def _graph(sources: dict[str, str], tmp_path: Path) -> dict[str, Module]:
    mods = {}
    for name, text in sources.items():
        is_package = name.endswith(".__init__")
        name = name.removesuffix(".__init__")
        mods[name] = Module(name, tmp_path / name, is_package, ast.parse(text))
    analyse(mods)
    return mods


def test_the_rules_see_what_they_should(tmp_path):
    """The checks catch a circle through a function's import, a private import and a private
    attribute, and accept a package ``__init__`` that imports its submodules."""
    circle = _graph({
        "kdexplain.__init__": "",
        "kdexplain.a": "def f():\n    from kdexplain.b import g\n",
        "kdexplain.b": "import kdexplain.a as a\nx = a._hidden\n",
        "kdexplain.p.__init__": "from kdexplain.p.q import y\n",
        "kdexplain.p.q": "from kdexplain.p import r\ny = 1\n",
        "kdexplain.p.r": "from kdexplain.c import _z\n",
        "kdexplain.c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                       "    import kdexplain.p.r\n_z = 1\n",
    }, tmp_path)
    cycles = find_cycles(circle)
    assert cycles == [["kdexplain.a", "kdexplain.b", "kdexplain.a"]]
    assert "(line 2) -> kdexplain.b" in _describe(cycles[0], circle)
    assert circle["kdexplain.b"].private == ["2: kdexplain.a._hidden"]
    assert circle["kdexplain.p.r"].private == ["1: from kdexplain.c import _z"]
    # a submodule taking a name defined in its package's __init__, which imports it: a circle
    real = _graph({"kdexplain.p.__init__": "from kdexplain.p.q import y\nZ = 1\n",
                   "kdexplain.p.q": "from kdexplain.p import Z\ny = 1\n"}, tmp_path)
    assert find_cycles(real) == [["kdexplain.p", "kdexplain.p.q", "kdexplain.p"]]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module, absent", [
    ("kdexplain.train.losses", {"pydantic", "kdexplain.config", "kdexplain.models",
                                "kdexplain.train.loop"}),
    ("kdexplain.pipeline.study_index", {"kdexplain.train", "kdexplain.train.loop",
                                        "kdexplain.quantification.engine"}),
    ("kdexplain", {"torch", "pydantic", "kdexplain.quantification"}),
])
def test_importing_a_module_loads_only_what_it_needs(module, absent):
    loaded = _loaded_after_import(module)
    assert not absent & loaded, f"import {module} loaded {sorted(absent & loaded)}"


def test_an_analysis_uses_another_only_through_its_package(modules):
    """``analyses.localisation`` may use ``analyses.spurious``'s public names
    (``from analyses.spurious import ...``), not the modules behind them."""
    found = []
    for m in modules.values():
        parts = m.name.split(".")
        if parts[0] != "analyses" or len(parts) < 2:
            continue
        for target, line in m.depends.items():
            t = target.split(".")
            if t[0] == "analyses" and len(t) > 2 and t[1] != parts[1]:
                found.append(f"{m.path.relative_to(REPO)}:{line}: {target}")
    assert not found, "an analysis imports another's modules:\n  " + "\n  ".join(found)
