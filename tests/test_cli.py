"""The ``movex-p2p`` command line: help everywhere, and the demo's verdict."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from movex_p2p.cli import NEW_SECRET, build_parser, check_verdict, namespace_problem, resolve_secret
from movex_p2p.roomcode import WORDS

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
    for command in ("demo", "join", "inspect", "rooms", "room-code"):
        assert command in done.stdout
    assert "_demo" not in done.stdout, "internal subcommands stay hidden"


@pytest.mark.parametrize("command", ["demo", "join", "inspect", "rooms", "room-code"])
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
    assert (args.room, args.interface, args.seconds, args.port, args.peer) == ("r", ["127.0.0.2"], 1.0, 0, [])
    args = parser.parse_args(["join", "--room", "r", "--port", "47000", "--peer", "a:1", "--peer", "10.0.0.5:47000"])
    assert (args.port, args.peer, args.interface) == (47000, ["a:1", "10.0.0.5:47000"], None)


def test_room_code_prints_a_new_secret_of_common_words() -> None:
    codes = [run_cli("room-code", timeout=30), run_cli("room-code", "--words", "6", timeout=30)]
    assert [done.returncode for done in codes] == [0, 0], [done.stderr for done in codes]
    four, six = (done.stdout.strip().split("-") for done in codes)
    assert (len(four), len(six)) == (4, 6)
    assert set(four + six) <= set(WORDS)
    refused = run_cli("room-code", "--words", "0", timeout=30)
    assert refused.returncode == 2
    assert "not a number of words" in refused.stderr


def test_join_with_secret_alone_makes_a_room_code_and_says_it() -> None:
    parser = build_parser()
    args = parser.parse_args(["join", "--room", "r", "--secret", "--port", "47000"])
    assert (args.secret, args.port) == (NEW_SECRET, 47000)
    secret, note = resolve_secret(args)
    assert secret is not None
    assert len(secret.split("-")) == 4
    assert set(secret.split("-")) <= set(WORDS)
    assert note == f"* new room secret: {secret} (others join with --secret {secret})"
    assert resolve_secret(parser.parse_args(["join", "--room", "r", "--secret", "mine"])) == ("mine", None)
    assert resolve_secret(parser.parse_args(["join", "--room", "r"])) == (None, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interface", "no-such-adapter"], "no network adapter named 'no-such-adapter'; adapters found: "),
        (["--interface", "127.0.0.1"], "127.0.0.1 and IPv6 addresses cannot be used"),
        (["--peer", "10.0.0.5"], "argument --peer: peer address '10.0.0.5': expected HOST:PORT"),
        (["--peer", "[::1]:5"], "IPv6 is not supported"),
        (["--port", "70000"], "argument --port: '70000' is not a TCP port number"),
    ],
)
@pytest.mark.parametrize("command", ["join", "inspect"])
def test_user_errors_are_one_line_and_exit_2(command: str, args: list[str], message: str) -> None:
    """Refused before any socket is opened: safe to run outside a namespace."""
    done = run_cli(command, "--room", "r", *args, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(f"movex-p2p {command}")]
    assert len(errors) == 1, done.stderr
    assert message in errors[0]
    if "--interface" in args:
        assert "choose one with --interface" in errors[0]


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


@pytest.mark.netns
async def test_join_and_inspect_by_address_in_a_namespace() -> None:
    """A peer listens on a fixed port; inspect reaches it by address, and says why nothing is found elsewhere."""
    from movex_p2p.testing.netns import ADDRESS, open_namespace

    async with open_namespace() as ns:
        host = await ns.spawn_peer("p0", "--port", "47000")
        cli = ["-m", "movex_p2p", "inspect", "--room", "room", "--interface", "lo", "--seconds", "2"]
        # four processes at once: none of them shares a room (or, failing to listen, a port) with another
        found = await ns.spawn([*cli, "--peer", f"{ADDRESS}:47000"], name="inspect")
        alone = await ns.spawn([*cli[:3], "--room", "empty", *cli[5:]], name="alone")
        join = ["-m", "movex_p2p", "join", "--room", "room"]
        busy = await ns.spawn([*join, "--interface", ADDRESS, "--port", "47000"], name="busy")
        nowhere = await ns.spawn(join, name="nowhere")  # only loopback here: no default interface
        await found.process.wait()
        report = [e["line"] for e in found.events if e["ev"] == "garbage"]
        p0 = host.of("ready")[0]["id"]  # ids are derived from keys: the host's, as it reported it
        assert f"--peer {ADDRESS}:47000: linked to {p0}" in report, report
        assert f"links open: {p0}" in report, report
        for failed, message in [
            (busy, f"cannot listen on {ADDRESS} TCP port 47000: Address already in use; pick another --port"),
            (nowhere, "no non-loopback IPv4 interface (adapters: lo [127.0.0.1, 127.0.0.2])"),
        ]:
            await failed.process.wait()
            assert failed.process.returncode == 2
            lines = failed.stderr().splitlines()
            assert len(lines) == 1, lines
            assert message in lines[0]
        await alone.process.wait()
        report = [e["line"] for e in alone.events if e["ev"] == "garbage"]
        assert "mDNS (UDP 5353): on; peers seen over it: none" in report, report
        assert any(line.startswith("hint: no member seen over mDNS") and "--peer HOST:PORT" in line for line in report)
        await ns.leave(host)


def test_join_prints_incoming_lines_above_the_line_being_typed(capsys: pytest.CaptureFixture[str]) -> None:
    from movex_p2p.cli import Console

    class Typing:
        """readline while the user has typed "hello wor" and not pressed Enter."""

        @staticmethod
        def get_line_buffer() -> str:
            return "hello wor"

    console = Console()
    console._readline, console.prompt = Typing(), "> "
    console.say("<bob> hi")
    assert capsys.readouterr().out == "\r\x1b[K<bob> hi\n> hello wor"  # the line is drawn again, intact
    console._readline, console.prompt = None, ""  # not a terminal (a pipe, a test): plain lines
    console.say("<bob> hi")
    assert capsys.readouterr().out == "<bob> hi\n"


def _one_error(process: Any, command: str) -> str:
    """The one line a failed command printed on stderr (and no traceback)."""
    stderr = process.stderr()
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith(f"movex-p2p {command}: ")]
    assert len(errors) == 1, stderr
    return str(errors[0])


@pytest.mark.netns
async def test_join_and_inspect_fail_with_one_clear_line_in_a_namespace() -> None:
    """A game's room (no 'chat' type), a wrong secret, an empty room: one line on stderr, a non-zero exit."""
    from movex_p2p.testing.netns import open_namespace

    async with open_namespace() as ns:
        game = ["-m", "movex_p2p.testing.peer", "peer", "--name", "ann", "--room", "game", "--secret", "s", "--counter"]
        host = await ns.spawn(game, name="ann")
        await host.wait_event("ready", within=20)
        where = ["--interface", "lo"]
        join = await ns.spawn(["-m", "movex_p2p", "join", "--room", "game", "--secret", "s", *where], name="join")
        inspect = ["-m", "movex_p2p", "inspect", *where, "--seconds", "2"]
        empty = await ns.spawn([*inspect, "--room", "empty"], name="empty")  # alone in its room: no handshake
        with anyio.fail_after(40):
            await join.process.wait()
            await empty.process.wait()
        wrong = await ns.spawn([*inspect, "--room", "game", "--secret", "nope"], name="wrong")
        with anyio.fail_after(40):  # after join: a handshake of ours failing could confuse another
            await wrong.process.wait()
        assert join.process.returncode == 2, join.stderr()
        assert _one_error(join, "join") == (
            "movex-p2p join: room 'game' plays another game: its master has no resource type 'chat'; "
            "use `movex-p2p inspect --room game` to see it"
        )
        assert wrong.process.returncode == 2, wrong.stderr()
        error = _one_error(wrong, "inspect")
        assert "room 'game': peers were found, but every handshake with them failed on the room secret" in error
        assert error.endswith("give every peer the same secret (--secret)"), error
        assert empty.process.returncode == 1, empty.stderr()
        assert _one_error(empty, "inspect") == (
            "movex-p2p inspect: no peer answered in room 'empty' within 2 s (see the hints above)"
        )
        report = [e["line"] for e in empty.events if e["ev"] == "garbage"]
        assert any(line.startswith("hint: no member seen over mDNS") for line in report), report
        await ns.leave(host)
