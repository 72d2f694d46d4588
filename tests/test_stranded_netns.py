"""Stranded actions on the real stack (issue 15): a burst in flight when the master is SIGKILLed.

Peer processes on namespace hosts (movex_p2p.testing.multihost) with nftables loss, real mDNS and WebRTC.
Every survivor dispatches a burst at once, then 10 more, and the master is killed right after:
every handle settles, nothing is lost or doubled, and the room ends with one checksum. How fast
is measured in ``python benchmarks/wifi.py --only burst`` (12 peers too); here a hang is bounded.
"""

from __future__ import annotations

import pytest

from movex_p2p.testing.multihost import open_hosts
from movex_p2p.testing.wifi_bed import failover_with_burst

pytestmark = pytest.mark.netns


@pytest.mark.parametrize(("loss", "burst"), [(0, 100), (2, 500), (5, 100), (10, 500)])
async def test_a_burst_in_flight_at_a_master_kill_settles_exactly_once(loss: int, burst: int) -> None:
    async with open_hosts(4) as hosts:
        result = await failover_with_burst(hosts, 4, loss, burst=burst)
    assert result.ok, (result.problems, result)
    assert result.settled_after < 10


async def test_a_burst_at_a_kill_then_a_survivor_cut_and_healed_settles_exactly_once() -> None:
    async with open_hosts(4) as hosts:
        result = await failover_with_burst(hosts, 4, 5, burst=100, cut_heal=True)
    assert result.ok, (result.problems, result)
