"""Presence, the lobby and a wrong secret on the real stack (mDNS + WebRTC), every peer a process
in a private network namespace. Run with ``-s`` to print the measured figures."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from movex_p2p.testing.netns import PEER, Namespace, PeerProcess, example, no_python_noise, open_namespace

pytestmark = pytest.mark.netns

LOST_WITHIN = 1.0
"""A SIGKILLed player is reported lost within this (issue 10; the LAN's dead_after is 0.9 s)."""
LOST_SLACK = 0.1
"""What the test tolerates beyond it on a loaded 2-CPU machine (the figures printed say how close it runs)."""


def lines_of(process: PeerProcess) -> list[str]:
    """What a CLI process printed, one line each (the bed parses JSON lines: they come back as JSON)."""
    return [e["line"] if e.get("ev") == "garbage" else json.dumps(e) for e in process.events if e.get("ev") != "exit"]


def after(at: float, ev: str, event: dict[str, Any], **fields: Any) -> bool:
    """``event`` is an ``ev`` event later than ``at`` with these ``fields``."""
    return event["ev"] == ev and event["t"] > at and all(event.get(k) == v for k, v in fields.items())


async def spawn(ns: Namespace, name: str, *extra: str, wait: str | None = "ready") -> PeerProcess:
    role = "browse" if "--browse" in extra else "peer"  # a lobby browser, or a Peer
    args = [a for a in extra if a != "--browse"]
    peer = await ns.spawn([*PEER, role, "--name", name, *args], name=name)
    if wait is not None:
        await peer.wait_event(wait, within=30)
    return peer


async def test_presence_deltas_on_the_lan(tmp_path: Path) -> None:
    async with open_namespace() as ns:
        ann = await spawn(ns, "ann", "--identity", str(tmp_path / "ann.key"))
        bob = await spawn(ns, "bob", "--identity", str(tmp_path / "bob.key"))
        eye = await spawn(ns, "eye", "--role", "spectator")
        bob_id = (await bob.wait_event("ready"))["id"]
        ann_id = (await ann.wait_event("ready"))["id"]
        for watcher in (ann, eye):
            await watcher.wait_event("joined", name="bob", within=15)
        await ann.wait_event("joined", name="eye", role="spectator", within=15)
        await ann.command("members")
        members = (await ann.wait_event("members"))["members"]
        roles = {m["name"]: m["role"] for m in members.values()}
        assert roles == {"ann": "player", "bob": "player", "eye": "spectator"}
        assert (await ann.wait_event("members"))["master"] in (ann_id, bob_id)  # never the spectator

        # a graceful leave (the spectator: no handover in the way) is seen from its goodbye ("left"),
        # not from the liveness detector ("lost", LOST_WITHIN); how fast: benchmarks/lan.py (9-18 ms)
        await eye.command("leave")
        asked = (await eye.wait_event("leaving"))["t"]
        seen = (await ann.wait_event("parted", name="eye", reason="left", within=5))["t"]
        leave_ms = (seen - asked) * 1000
        assert leave_ms < LOST_WITHIN * 1000 / 2, f"a leave was seen after {leave_ms:.0f} ms"

        # SIGKILL: no goodbye; the others report it lost when the transport declares it dead
        kills: list[float] = []
        for _ in range(3):
            killed_at = time.monotonic()
            bob.kill()
            lost = await ann.wait_for(functools.partial(after, killed_at, "parted", reason="lost"), within=5)
            kills.append(lost["t"] - killed_at)
            bob = await spawn(ns, "bob", "--identity", str(tmp_path / "bob.key"))  # the same player comes back
            again = await ann.wait_for(functools.partial(after, killed_at, "joined"), within=15)
            assert again["id"] == bob_id
        print(f"\nleave seen after {leave_ms:.0f} ms; SIGKILL reported lost after {[f'{k:.3f}' for k in kills]} s")
        assert max(kills) < LOST_WITHIN + LOST_SLACK, kills
        await ns.leave_all([ann, bob])
        no_python_noise(ann)


async def test_browse_rooms_sees_a_room_within_a_second_of_its_first_peer() -> None:
    async with open_namespace() as ns:
        browser = await spawn(ns, "browser", "--browse", "--wait", "1.0", wait="browser_ready")
        figures: list[float] = []
        first = await spawn(ns, "ann", "--room", "castle", wait="entering")
        await browser.command("browse")
        started = (await browser.wait_event("browse_started"))["t"]
        rooms = (await browser.wait_event("rooms", within=10))["rooms"]
        figures.append(started - first.of("entering")[0]["t"])
        assert [r["room"] for r in rooms] == ["castle"], rooms
        assert rooms[0]["names"] == ["ann"]
        await first.wait_event("ready")
        # more players, a spectator and another room; then a player is killed
        others = [
            await spawn(ns, "bob", "--room", "castle"),
            await spawn(ns, "watcher", "--room", "castle", "--role", "spectator"),
            await spawn(ns, "zed", "--room", "dungeon", "--secret", "s"),
        ]
        await first.wait_event("joined", name="watcher", within=15)
        browser.events.clear()
        await browser.command("browse")
        rooms = (await browser.wait_event("rooms", within=10))["rooms"]
        counts = [{k: r[k] for k in ("room", "players", "names", "spectators", "secret_required")} for r in rooms]
        assert counts == [
            {"room": "castle", "players": 2, "names": ["ann", "bob"], "spectators": 1, "secret_required": False},
            {"room": "dungeon", "players": 1, "names": ["zed"], "spectators": 0, "secret_required": True},
        ], rooms
        others[0].kill()
        await first.wait_event("parted", name="bob", reason="lost", within=5)
        browser.events.clear()
        await browser.command("browse")
        rooms = (await browser.wait_event("rooms", within=10))["rooms"]
        assert rooms[0]["names"] == ["ann"], rooms  # a killed peer answers no more
        poller = await spawn(ns, "poller", "--browse", "--wait", "0.1", "--room", "tower", wait="browser_ready")
        await poller.command("poll")
        fresh = await spawn(ns, "solo", "--room", "tower", wait="entering")
        seen = await poller.wait_event("seen", within=10)
        latency = seen["t"] - fresh.of("entering")[0]["t"]
        assert latency < 1.0
        print(
            f"\nbrowse_rooms(wait=1.0) called {figures[0] * 1000:.0f} ms after the first peer started: listed; "
            f"back-to-back 0.1 s browses first list a new room {latency * 1000:.0f} ms after its peer starts"
        )
        await ns.leave_all([fresh, first, *others[1:]])
        await browser.command("leave")


async def test_a_wrong_secret_makes_wait_ready_fail_and_both_sides_report_it() -> None:
    async with open_namespace() as ns:
        host = await spawn(ns, "host", "--secret", "right")
        guest = await spawn(ns, "guest", "--secret", "wrong", wait="entering")
        error: dict[str, Any] = await guest.wait_event("error", within=15)
        assert error["type"] == "AuthenticationFailed"
        assert "same secret" in error["message"]
        auth = await host.wait_event("diagnostic", kind="auth_failed", within=10)
        assert "same secret" in auth["reason"]
        print(f"\nwait_ready raised {(error['t'] - guest.of('entering')[0]['t']) * 1000:.0f} ms after entering")
        await ns.leave_all([host, guest])


async def test_inspect_shows_any_type_as_a_spectator_and_join_explains_a_wrong_secret() -> None:
    async with open_namespace() as ns:
        inspect = ["-m", "movex_p2p", "inspect", "--room", "r", "--interface", "lo", "--seconds", "1.5"]
        empty = await ns.spawn(inspect, name="empty")
        await empty.process.wait()
        report = lines_of(empty)
        assert "master: none (no player in the room)" in report, report
        ann = await spawn(ns, "ann", "--room", "r", "--counter", "--secret", "s")
        await ann.command("increment")
        await ann.wait_event("incremented")
        cli = ["-m", "movex_p2p", "inspect", "--room", "r", "--secret", "s", "--interface", "lo", "--seconds", "2"]
        found = await ns.spawn(cli, name="inspect")
        await ann.wait_event("joined", name="inspector", role="spectator", within=15)
        await found.process.wait()
        report = lines_of(found)
        ann_id = (await ann.wait_event("ready"))["id"]
        assert f"master: ann ({ann_id})" in report, report
        assert any(line.startswith("room 'r': 1 player(s), seen by inspector") for line in report), report
        assert any(line.startswith(f"  ann ({ann_id}) [player, master]") for line in report), report
        assert any(line.startswith("  counter:c  v1") for line in report), report  # a type inspect does not have
        assert '{"count": 1}' in report, report  # (a JSON line: the bed parses it, leading spaces gone)
        assert found.process.returncode == 0
        await ann.command("members")
        members = (await ann.wait_event("members"))["members"]
        assert members[ann_id]["role"] == "player"
        assert (await ann.wait_event("members"))["master"] == ann_id  # the inspector never took over
        wrong = ["-m", "movex_p2p", "join", "--room", "r", "--secret", "nope", "--interface", "lo"]
        join = await ns.spawn(wrong, name="join")
        with anyio.fail_after(30):
            await join.process.wait()
        assert join.process.returncode == 2
        errors = join.stderr().splitlines()
        assert len(errors) == 1, errors
        assert "same secret" in errors[0], errors
        assert "(--secret)" in errors[0], errors
        await ns.leave(ann)


HAND: int = example("cards").HAND
"""Cards dealt to each player of examples/cards.py."""


def cards_in(line: str) -> int:
    """How many cards a ``your hand: 1) 7♥  2) K♣   [...]`` line shows."""
    return len(re.findall(r"\d+\) ", line.split("   [")[0]))


async def printed(process: PeerProcess, predicate: Callable[[str], bool], *, within: float = 30) -> str:
    """The first line ``process`` printed (so far or within ``within`` s) that matches ``predicate``."""
    event = await process.wait_for(lambda e: e.get("ev") == "garbage" and predicate(e["line"]), within=within)
    return str(event["line"])


def _turn_or_over(event: dict[str, Any], *, after: set[int]) -> bool:
    """``event`` is a line printed after those in ``after`` (ids) that ends the game or prompts a turn."""
    line = event.get("line", "") if event.get("ev") == "garbage" else ""
    return id(event) not in after and (line.startswith("game over") or "your turn" in line)


async def test_cards_on_the_lan_bots_a_spectator_and_a_player_back_after_sigkill(tmp_path: Path) -> None:
    """examples/cards.py from terminals: two bots, a typed-in player killed mid-game and restarted, a spectator."""
    async with open_namespace() as ns:
        base = ["examples/cards.py", "--interface", "127.0.0.2", "--players", "3"]
        bots = [await ns.spawn([*base, "--name", n, "--bot"], name=n) for n in ("ann", "bob")]
        for bot in bots:  # the bots' room exists (each took its seat): the others join it
            await printed(bot, lambda line: line.startswith("you are "))
        key = str(tmp_path / "cy.key")
        eye = await ns.spawn([*base, "--name", "eye", "--spectate"], name="eye")
        cy = await ns.spawn([*base, "--name", "cy", "--identity", key], name="cy")
        await printed(cy, lambda line: "your turn" in line and cards_in(line) == HAND, within=60)
        cy.events.clear()  # what it prints from now on: its hand while it drew is no more of interest
        await cy.command_raw("1")  # plays its first card, then crashes
        await printed(eye, lambda line: line.startswith("round 1:"))
        # its hand once its card left it (round 1 is revealed: the master confirmed that too)
        played = await printed(cy, lambda line: line.startswith("your hand: ") and cards_in(line) == HAND - 1)
        held = played.split("   [")[0]
        cy.kill()
        cy = await ns.spawn([*base, "--name", "cy", "--identity", key], name="cy-again")
        await printed(cy, lambda line: line.split("   [")[0] == held)  # the same hand, from the master
        # read on from the last line acted upon, never clearing: a prompt printed again (its table line
        # changed) is typed into once more (harmless: "not your turn"), and "game over" is never lost
        start = 0  # (a new process: all it printed counts, its first prompt included)
        while not any(line.startswith("game over") for line in lines_of(eye)):
            event = await cy.wait_for(
                functools.partial(_turn_or_over, after={id(e) for e in cy.events[:start]}), within=60
            )
            if event["line"].startswith("game over"):
                break
            start = next(i for i, e in enumerate(cy.events) if e is event) + 1
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await cy.command_raw("1")  # (it may have ended the game and exited just now)
        await printed(eye, lambda line: line.startswith("game over"))
        reveals = [line for line in lines_of(eye) if line.startswith("round ") and "takes it" in line]
        print("\n" + "\n".join(reveals))
        assert [line.split(":")[0] for line in reveals] == [f"round {i}" for i in range(1, 6)], reveals
        assert all(" cy " in line for line in reveals)  # cy played every round, before and after its crash
        for bot in bots:
            with anyio.fail_after(30):
                await bot.process.wait()
            assert bot.process.returncode == 0, bot.stderr()
