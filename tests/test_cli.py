"""The ``movex-p2p`` command line: help everywhere, and the demo's verdict."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from movex_p2p.cli import build_parser, check_verdict, namespace_problem

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "140", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "movex_p2p", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_top_level_help_lists_the_commands() -> None:
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    for command in ("demo", "join", "inspect"):
        assert command in done.stdout
    assert "_demo" not in done.stdout, "internal subcommands stay hidden"


@pytest.mark.parametrize("command", ["demo", "join", "inspect"])
def test_each_subcommand_has_help(command: str) -> None:
    done = run_cli(command, "--help")
    assert done.returncode == 0, done.stderr
    assert f"movex-p2p {command}" in done.stdout


def test_console_script_is_installed() -> None:
    script = shutil.which("movex-p2p", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the movex-p2p console script is not installed next to this interpreter")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0
    assert "demo" in done.stdout


def test_join_and_inspect_require_a_room() -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["join"])
    with pytest.raises(SystemExit):
        parser.parse_args(["inspect"])
    args = parser.parse_args(["inspect", "--room", "r", "--interface", "127.0.0.2", "--seconds", "1"])
    assert (args.room, args.interface, args.seconds) == ("r", "127.0.0.2", 1.0)


class _Member:
    def __init__(self, name: str, status: dict[str, object], *, killed: bool = False) -> None:
        self.name, self.status, self.killed = name, status, killed

    def command(self, cmd: str) -> None:
        pass

    def kill(self) -> None:
        self.killed = True


def test_verdict_counts_every_confirmed_action_exactly_once() -> None:
    by = {"p1": 3, "p2": 2, "p3": 1}
    final = {"checksum": "abc", "count": 6, "by": by, "failed": 0, "outstanding": 0}
    members = [
        _Member("p1", {**final, "confirmed": 3}),
        _Member("p2", {**final, "confirmed": 2}),
        _Member("p3", {"checksum": "old", "count": 4, "by": {}, "confirmed": 1}, killed=True),
    ]
    ok, text = check_verdict(members)
    assert ok, text
    assert text.startswith("states equal, nothing lost")
    members[1].status = {**final, "confirmed": 3}  # p2 claims one more than the state holds: lost
    ok, text = check_verdict(members)
    assert not ok
    assert "p2" in text
    members[1].status = {**final, "confirmed": 2, "checksum": "xyz"}
    assert not check_verdict(members)[0]


def test_local_demo_kills_the_master_and_loses_nothing() -> None:
    done = run_cli("demo", "--local", "--peers", "3", "--seconds", "6")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VERDICT: states equal, nothing lost" in done.stdout
    assert "killed the master" in done.stdout
    assert "took over after" in done.stdout


@pytest.mark.netns
def test_process_demo_in_a_private_network_namespace() -> None:
    problem = namespace_problem()
    if problem is not None:
        pytest.skip(f"process demo unavailable here: {problem}")
    done = run_cli("demo", "--peers", "3", "--seconds", "6", timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "peer processes" in done.stdout
    assert "VERDICT: states equal, nothing lost" in done.stdout
