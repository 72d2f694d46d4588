"""The lobby on the multi-host bed (issue 16): several hosts browsing at once all find the room.

Every process runs in its own namespace host (tests/multihost.py); run with ``-s`` for figures.
"""

from __future__ import annotations

import anyio
import pytest

from multihost import open_hosts
from netns import PeerProcess

pytestmark = pytest.mark.netns

BROWSERS = 3
TRIES = 5
WAIT = 1.0


async def browse_all(browsers: list[PeerProcess]) -> list[list[dict[str, object]]]:
    """Tell every browser to browse at the same instant; the rooms each one listed."""
    for browser in browsers:
        browser.events.clear()
    async with anyio.create_task_group() as tg:
        for browser in browsers:
            tg.start_soon(browser.command, "browse")
    return [(await b.wait_event("rooms", within=10 + WAIT))["rooms"] for b in browsers]


async def test_three_hosts_browsing_at_once_all_find_the_room_every_time() -> None:
    async with open_hosts(1 + BROWSERS) as hosts:
        host = await hosts.spawn_on(0, ["-m", "tests.game_peer", "--name", "ann", "--room", "castle"], name="ann")
        await host.wait_event("ready", within=30)
        browsers = [
            await hosts.spawn_on(1 + i, ["-m", "tests.game_peer", "--browse", "--wait", str(WAIT)], name=f"b{i}")
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
