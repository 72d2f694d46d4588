"""The pure rings (resource/, election/, wire.py, nodecore.py and the link model) import no I/O, clock or randomness.

Transitively: a pure module may import another project module only if that one is pure too, and
no module it reaches may import asyncio, anyio, aiortc, zeroconf, time, random, socket or
threading. Two checks: an import graph walked with ``ast`` (it also sees imports inside functions
and names the chain), and a fresh interpreter per pure module that imports it and reads
``sys.modules`` (it also sees what third-party packages import).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import movex_p2p

PACKAGE = Path(movex_p2p.__file__).resolve().parent
FORBIDDEN = frozenset({"asyncio", "anyio", "aiortc", "zeroconf", "time", "random", "socket", "threading"})
PURE = [
    *sorted([*PACKAGE.joinpath("resource").glob("*.py"), *PACKAGE.joinpath("election").glob("*.py")]),
    *(
        PACKAGE / name
        for name in (
            "wire.py",
            "nodecore.py",
            "censorship.py",
            "nodecensor.py",
            "signed_history.py",
            "outbox.py",
            "roster.py",
            "routes.py",
            "links.py",
            "world.py",
            "ids.py",
            "presence.py",
            "verify.py",
            "signing.py",
        )
    ),
    PACKAGE / "transport" / "base.py",  # the seam NodeCore reads transport events from
    *(PACKAGE / "transport" / name for name in ("meshcore.py", "mesh.py", "twins.py")),  # the LAN mesh's policy
    PACKAGE / "transport" / "admission.py",
    PACKAGE / "transport" / "meshworld.py",  # MeshCores in the one simulated world
    PACKAGE / "transport" / "mdnsbudget.py",  # what each mDNS source may add
]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.Module) -> list[ast.AST]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def runtime_imports(source: str) -> list[tuple[int, str]]:
    """Top-level names of absolute imports outside ``if TYPE_CHECKING:`` blocks."""
    found: list[tuple[int, str]] = []
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.lineno, str(node.args[0].value).split(".")[0]))
    return found


class ImportGraph:
    """The runtime imports between the modules of one package on disk, read with ``ast``."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self._edges: dict[str, tuple[list[str], list[str]]] = {}  # the files do not change during a run

    def module_of(self, path: Path) -> str:
        parts = [self.name, *path.relative_to(self.root).with_suffix("").parts]
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def path_of(self, module: str) -> Path | None:
        if module != self.name and not module.startswith(self.name + "."):
            return None
        relative = Path(*module.split(".")[1:])
        for candidate in (self.root / relative / "__init__.py", self.root / relative.with_suffix(".py")):
            if candidate.is_file():
                return candidate
        return None

    def edges(self, module: str) -> tuple[list[str], list[str]]:
        """(project modules, top-level outside names) that ``module`` imports at run time (read once)."""
        if module not in self._edges:
            self._edges[module] = self._read_edges(module)
        return self._edges[module]

    def _read_edges(self, module: str) -> tuple[list[str], list[str]]:
        path = self.path_of(module)
        assert path is not None, module
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        inside: list[str] = []
        outside = [name for _, name in runtime_imports(path.read_text())]
        for node in _runtime_nodes(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                targets = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            for target in targets:
                # importing a.b.c runs a/__init__ and a/b/__init__ too (the package root excepted: see below)
                parts = target.split(".")
                for end in range(2, len(parts) + 1):
                    prefix = ".".join(parts[:end])
                    if self.path_of(prefix) is not None:
                        inside.append(prefix)
        return inside, [name for name in outside if name != self.name]

    def forbidden_chains(self, start: str, forbidden: frozenset[str]) -> list[str]:
        """Every ``a -> b -> forbidden`` chain reachable from ``start`` (one per offending module)."""
        chains: list[str] = []
        seen = {start}
        todo = [[start]]
        while todo:
            chain = todo.pop()
            inside, outside = self.edges(chain[-1])
            chains += [" -> ".join([*chain, name]) for name in sorted(set(outside) & forbidden)]
            for module in inside:
                if module not in seen:
                    seen.add(module)
                    todo.append([*chain, module])
        return sorted(chains)


GRAPH = ImportGraph(PACKAGE, "movex_p2p")
# The package root is left out on purpose: ``movex_p2p/__init__.py`` re-exports Peer (anyio) for users;
# a pure module is imported from it, never imports it.

_PROBE = textwrap.dedent(
    """
    import importlib, json, sys, types
    before = set(sys.modules)
    root, name, module = sys.argv[1:4]
    package = types.ModuleType(name)
    package.__path__ = [root]  # the package's submodules without running its __init__ (see above)
    sys.modules[name] = package
    importlib.import_module(module)
    print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - before})))
    """
)


def loaded_by(root: Path, name: str, module: str) -> set[str]:
    """Top-level module names a fresh interpreter loads to import ``module`` (its package root not run)."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE, str(root), name, module], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def test_the_checker_sees_imports() -> None:
    source = (
        "import time\nfrom random import Random\nimport os.path\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import random\n"
        "def f():\n    import anyio\n"
    )
    names = [name for _, name in runtime_imports(source)]
    assert sorted(names) == ["anyio", "os", "random", "time", "typing"]  # not the TYPE_CHECKING random


def _fake_package(tmp: Path) -> Path:
    """A package whose pure-looking ``core`` imports a project module that imports anyio."""
    root = tmp / "fakepkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("import asyncio\n")  # the root: left out, as in movex_p2p
    (root / "sub" / "__init__.py").write_text("")
    (root / "core.py").write_text("from __future__ import annotations\nfrom .sub import helper\n")
    (root / "sub" / "helper.py").write_text("from .. import clean\nimport anyio\n")
    (root / "clean.py").write_text("import dataclasses\n")
    (root / "lazy.py").write_text("def f() -> None:\n    from fakepkg.sub import helper\n")
    return root


def test_the_graph_follows_project_modules_to_a_forbidden_import(tmp_path: Path) -> None:
    graph = ImportGraph(_fake_package(tmp_path), "fakepkg")
    assert graph.forbidden_chains("fakepkg.core", FORBIDDEN) == ["fakepkg.core -> fakepkg.sub.helper -> anyio"]
    assert graph.forbidden_chains("fakepkg.lazy", FORBIDDEN) == ["fakepkg.lazy -> fakepkg.sub.helper -> anyio"]
    assert graph.forbidden_chains("fakepkg.clean", FORBIDDEN) == []


def test_the_fresh_interpreter_sees_an_indirect_import(tmp_path: Path) -> None:
    root = _fake_package(tmp_path)
    assert "anyio" in loaded_by(root, "fakepkg", "fakepkg.core")
    assert loaded_by(root, "fakepkg", "fakepkg.clean") & FORBIDDEN == set()


def test_there_are_pure_modules() -> None:
    names = {p.name for p in PURE}
    assert {"master.py", "client.py", "state.py", "machine.py", "wire.py", "nodecore.py", "links.py"} <= names


@pytest.mark.parametrize("path", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_module_imports_no_io_clock_or_random(path: Path) -> None:
    # MasterCore gets an ``rng_factory`` (the node passes random.Random), so no exception is needed.
    bad = [(line, name) for line, name in runtime_imports(path.read_text()) if name in FORBIDDEN]
    assert bad == [], f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_module_reaches_no_io_clock_or_random_through_the_project(path: Path) -> None:
    assert GRAPH.forbidden_chains(GRAPH.module_of(path), FORBIDDEN) == []


@pytest.mark.parametrize("path", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_module_loads_no_io_clock_or_random_in_a_fresh_interpreter(path: Path) -> None:
    assert loaded_by(PACKAGE, "movex_p2p", GRAPH.module_of(path)) & FORBIDDEN == set()


MAX_CLASS_LINES = 500
"""Issue 17's bound: a class past it holds more than one job (split it, as NodeCore's sub-cores)."""


def test_no_class_in_the_package_is_over_500_lines() -> None:
    sizes = {
        f"{path.relative_to(PACKAGE)}:{node.name}": (node.end_lineno or node.lineno) - node.lineno + 1
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    }
    assert len(sizes) > 100  # it sees the package's classes
    assert {name: n for name, n in sizes.items() if n > MAX_CLASS_LINES} == {}
