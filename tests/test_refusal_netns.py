"""A refused address is told why (issue 16 item 4), on the multi-host bed.

A listener refuses, for a while, an address whose handshakes keep failing. Release 0.3 hung up
without a word: the next guest from that address (a player who got the secret wrong a few times,
then fixed it or not) saw a cut-short handshake, not a wrong secret, and after 3.1 s was "ready"
alone in a room of its own. Now the listener answers with an unsigned reason and a retry time,
and the guest's ``wait_ready`` raises ``mx.AuthenticationFailed`` carrying both.
"""

from __future__ import annotations

import pytest

from multihost import open_hosts

pytestmark = pytest.mark.netns

PORT = 47200
FAILURES, PACE = 34, 0.25
"""Handshakes that fail from the guest's address, one every 0.25 s: the 4th has it refused for 1 s,
each one after a refusal ends doubles it (those during one are refused: no strike), so the last
strike, ~8 s in, refuses it for 8 s: well past the guest's first dial."""


async def test_a_guest_from_a_refused_address_gets_authentication_failed_with_the_reason() -> None:
    async with open_hosts(2) as hosts:
        game = ["-m", "tests.game_peer", "--room", "castle"]
        host = await hosts.spawn_on(0, [*game, "--name", "host", "--secret", "right", "--port", str(PORT)], name="host")
        await host.wait_event("ready", within=30)
        strikes = ["-m", "tests.hostile_lan", "--mode", "fail", "--host", hosts.addresses[0]]
        hostile = await hosts.spawn_on(
            1, [*strikes, "--port", str(PORT), "--count", str(FAILURES), "--pace", str(PACE)], name="hostile"
        )
        await hostile.wait_event("failed", within=60)
        guest = await hosts.spawn_on(1, [*game, "--name", "guest"], name="guest")  # no secret at all
        error = await guest.wait_for(lambda e: e["ev"] in ("error", "ready"), within=30)
        entered = guest.of("entering")[0]["t"]
        print(f"\nguest from a refused address: {error['ev']} after {(error['t'] - entered) * 1000:.0f} ms: {error}")
        assert error["ev"] == "error", error  # 0.3: "ready", alone, after 3.1 s
        assert error["type"] == "AuthenticationFailed", error
        assert "too many failed handshakes" in error["cause"], error
        assert "retry after" in error["cause"], error
        await hosts.leave(guest)
        await hosts.leave(host)
