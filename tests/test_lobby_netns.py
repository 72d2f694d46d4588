"""The lobby on the multi-host bed (issue 16): several hosts browsing at once all find the room.

Every process runs in its own namespace host (movex_p2p.testing.multihost); run with ``-s`` for figures.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from movex_p2p.testing.multihost import open_hosts
from movex_p2p.testing.netns import ADDRESS, PeerProcess, open_namespace

pytestmark = pytest.mark.netns

BROWSERS = 3
TRIES = 5
WAIT = 1.0


async def browse_all(browsers: list[PeerProcess]) -> list[list[dict[str, Any]]]:
    """Tell every browser to browse at the same instant; the rooms each one listed."""
    for browser in browsers:
        browser.events.clear()
    async with anyio.create_task_group() as tg:
        for browser in browsers:
            tg.start_soon(browser.command, "browse")
    return [(await b.wait_event("rooms", within=10 + WAIT))["rooms"] for b in browsers]


async def test_three_hosts_browsing_at_once_all_find_the_room_every_time() -> None:
    async with open_hosts(1 + BROWSERS) as hosts:
        host = await hosts.spawn_on(
            0, ["-m", "movex_p2p.testing.peer", "peer", "--name", "ann", "--room", "castle"], name="ann"
        )
        await host.wait_event("ready", within=30)
        browsers = [
            await hosts.spawn_on(1 + i, ["-m", "movex_p2p.testing.peer", "browse", "--wait", str(WAIT)], name=f"b{i}")
            for i in range(BROWSERS)
        ]
        for browser in browsers:
            await browser.wait_event("browser_ready", within=30)
        found = 0
        for _ in range(TRIES):
            for rooms in await browse_all(browsers):
                found += any(r["room"] == "castle" and r["names"] == ["ann"] for r in rooms)
        print(f"\n{BROWSERS} hosts browsing at once, {TRIES} tries: {found} of {BROWSERS * TRIES} found the room")
        assert found == BROWSERS * TRIES
        for browser in browsers:
            await browser.command("leave")
        await hosts.leave(host)


HINTS = ["--game", "liars-dice", "--max-players", "6", "--lobby-info", '{"mode": "classic"}', "--secret", "s"]


async def test_a_lobby_shows_each_rooms_hints_filters_by_game_and_sees_it_start() -> None:
    async with open_hosts(2) as hosts:
        game = ["-m", "movex_p2p.testing.peer", "peer", "--room", "castle", *HINTS]
        ann = await hosts.spawn_on(0, [*game, "--name", "ann"], name="ann")
        chess = ["-m", "movex_p2p.testing.peer", "peer", "--room", "study", "--game", "chess", "--name", "kim"]
        kim = await hosts.spawn_on(0, chess, name="kim")
        browser = await hosts.spawn_on(1, ["-m", "movex_p2p.testing.peer", "browse", "--wait", str(WAIT)], name="lobby")
        for peer in (ann, kim):
            await peer.wait_event("ready", within=30)
        await browser.wait_event("browser_ready", within=30)
        (rooms,) = await browse_all([browser])
        castle = {
            "room": "castle",
            "players": 1,
            "names": ["ann"],
            "spectators": 0,
            "game": "liars-dice",
            "version": rooms[0]["version"],
            "max_players": 6,
            "secret_required": True,
            "started": False,
            "info": {"mode": "classic"},
        }
        assert rooms == [castle, {**rooms[1], "room": "study", "game": "chess", "started": False}], rooms
        assert len(rooms[0]["version"]) == 12
        assert rooms[1]["version"] == castle["version"]  # the same types (tests/resources.Counter)
        assert (rooms[1]["max_players"], rooms[1]["secret_required"], rooms[1]["info"]) == (None, False, {})

        browser.events.clear()
        await browser.command("browse", game="chess")
        assert [r["room"] for r in (await browser.wait_event("rooms", within=10 + WAIT))["rooms"]] == ["study"]

        bob = await hosts.spawn_on(0, [*game, "--name", "bob", "--counter"], name="bob")  # creates counter:c
        await ann.wait_event("joined", name="bob", within=30)
        await bob.wait_event("ready", within=30)
        for _ in range(10):  # each peer re-announces as soon as its room holds a resource
            (rooms,) = await browse_all([browser])
            if rooms[0]["started"]:
                break
        assert rooms[0] == {**castle, "players": 2, "names": ["ann", "bob"], "started": True}, rooms
        await browser.command("leave")
        await hosts.leave_all([bob, ann, kim])


async def test_movex_p2p_rooms_lists_the_rooms() -> None:
    async with open_namespace() as ns:
        ann = await ns.spawn(
            ["-m", "movex_p2p.testing.peer", "peer", "--name", "ann", "--room", "castle", *HINTS], name="ann"
        )
        await ann.wait_event("ready", within=30)
        cli = ["-m", "movex_p2p", "rooms", "--interface", ADDRESS, "--wait", "0.5"]
        listed = await ns.spawn(cli, name="rooms")
        other = await ns.spawn([*cli, "--game", "chess"], name="chess")
        as_json = await ns.spawn([*cli, "--json"], name="json")
        for process in (listed, other, as_json):
            with anyio.fail_after(30):
                await process.process.wait()
            assert process.process.returncode == 0, process.stderr()
        printed = [e["line"] for e in listed.events if e["ev"] == "garbage"]
        assert printed[0] == "castle: 1 player(s) (ann)", printed
        assert printed[1].startswith("  game liars-dice, max 6 players, secret required, not started, types "), printed
        assert printed[1].endswith(', info {"mode": "classic"}'), printed
        nothing = [e["line"] for e in other.events if e["ev"] == "garbage"]
        assert nothing == ["no rooms of game 'chess' answered within 0.5 s"], nothing
        printed_json: list[Any] = list(as_json.events)  # one JSON line, a list: the bed keeps it as it is
        (rooms,) = [e for e in printed_json if isinstance(e, list)]
        assert [(r["room"], r["game"], r["max_players"], r["info"]) for r in rooms] == [
            ("castle", "liars-dice", 6, {"mode": "classic"})
        ], rooms
        print("\nmovex-p2p rooms:\n" + "\n".join(printed))
        await ns.leave(ann)
