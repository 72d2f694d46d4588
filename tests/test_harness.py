"""The harness itself: one peer program with one JSON-lines protocol, and no import-path hacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import movex_p2p.testing.peer as program

ROOT = Path(__file__).resolve().parent.parent


def test_nothing_edits_the_import_path() -> None:
    """tests/ is a package, the beds live in movex_p2p.testing, examples/ is on pytest's pythonpath."""
    edits = re.compile(r"sys\.path\s*(\.insert|\.append|\[|\+=|=)")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("src", "tests", "benchmarks", "examples")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if edits.search(line) and path != Path(__file__).resolve()
    ]
    assert found == []


def test_benchmarks_import_nothing_from_tests() -> None:
    imports = re.compile(r"^\s*(from|import)\s+(tests|resources|netns|multihost|\w+_bed|\w+_peer)\b", re.MULTILINE)
    found = [path.name for path in sorted((ROOT / "benchmarks").glob("*.py")) if imports.search(path.read_text())]
    assert found == []


def test_there_is_one_peer_program() -> None:
    """Every process the beds and tests start as a peer is ``python -m movex_p2p.testing.peer ROLE``."""
    programs = re.compile(r"^(\w+_peer|hostile_lan)\.py$")
    assert sorted(p.name for p in (ROOT / "tests").glob("*.py") if programs.match(p.name)) == []
    runs = re.compile(r'"-m",\s*"tests\.')  # a module of tests/ started as a process
    found = [
        path.name
        for folder in ("src", "tests", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if runs.search(path.read_text()) and path != Path(__file__).resolve()
    ]
    assert found == []
    parser = program.build_parser()
    for role in program.RUNNERS:
        assert parser.parse_args([role, "--iface", "10.77.0.1"]).mode == role  # the beds append --iface


def test_the_program_reads_json_commands_and_reports_what_it_cannot_run(tmp_path: Path) -> None:
    """The browse role opens no socket until told to browse: bad lines are reported, ``leave`` ends it."""
    env = {**os.environ, "PYTHONPATH": str(Path(program.__file__).resolve().parents[2])}
    lines = ["not json", '["cmd"]', '{"cmd": "dance"}', '{"cmd": "leave"}', '{"cmd": "browse"}']
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-m", "movex_p2p.testing.peer", "browse"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(isinstance(e["t"], float) for e in events)
    assert [{k: v for k, v in e.items() if k != "t"} for e in events] == [
        {"ev": "browser_ready"},
        {"ev": "unknown", "line": "not json"},
        {"ev": "unknown", "line": '["cmd"]'},
        {"ev": "unknown", "cmd": "dance"},
        {"ev": "left"},
    ]
    assert "Traceback" not in done.stderr
