"""The pure rings (resource/, election/, wire.py, nodecore.py and the link model) import no I/O, clock or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import movex_p2p

PACKAGE = Path(movex_p2p.__file__).resolve().parent
FORBIDDEN = frozenset({"asyncio", "anyio", "aiortc", "zeroconf", "time", "random", "socket", "threading"})
PURE = [
    *sorted([*PACKAGE.joinpath("resource").glob("*.py"), *PACKAGE.joinpath("election").glob("*.py")]),
    *(PACKAGE / name for name in ("wire.py", "nodecore.py", "routes.py", "links.py", "ids.py", "presence.py")),
    PACKAGE / "transport" / "base.py",  # the seam NodeCore reads transport events from
]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(source: str) -> list[tuple[int, str]]:
    """Top-level module names imported outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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


def test_the_checker_sees_imports() -> None:
    source = (
        "import time\nfrom random import Random\nimport os.path\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import random\n"
        "def f():\n    import anyio\n"
    )
    names = [name for _, name in runtime_imports(source)]
    assert sorted(names) == ["anyio", "os", "random", "time", "typing"]  # not the TYPE_CHECKING random


def test_there_are_pure_modules() -> None:
    names = {p.name for p in PURE}
    assert {"master.py", "client.py", "state.py", "machine.py", "wire.py", "nodecore.py", "links.py"} <= names


@pytest.mark.parametrize("path", PURE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pure_module_imports_no_io_clock_or_random(path: Path) -> None:
    # MasterCore gets an ``rng_factory`` (the node passes random.Random), so no exception is needed.
    bad = [(line, name) for line, name in runtime_imports(path.read_text()) if name in FORBIDDEN]
    assert bad == [], f"{path.name} imports {bad}"
