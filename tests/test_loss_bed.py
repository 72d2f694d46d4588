"""The loss bed itself: nftables in each host namespace drops what it is told to (movex_p2p.testing.multihost)."""

from __future__ import annotations

import pytest

from movex_p2p.testing.multihost import Hosts, open_hosts

pytestmark = pytest.mark.netns


async def probe(hosts: Hosts, count: int = 200) -> int:
    prober = await hosts.spawn_on(
        0, ["tests/udp_probe.py", "--to", hosts.addresses[1], "--count", str(count)], name="probe"
    )
    return int((await prober.wait_event("probe", within=20))["echoed"])


async def test_loss_cut_heal_and_multicast_rules_drop_what_they_say() -> None:
    async with open_hosts(2) as hosts:
        server = await hosts.spawn_on(1, ["tests/udp_probe.py", "--serve"], name="echo")
        await server.wait_event("ready", within=20)
        assert await probe(hosts) == 200
        hosts.cut(1)
        assert await probe(hosts) == 0
        hosts.heal(1)
        hosts.set_loss(30, host=1)  # in and out of host 1: an echo survives with p = 0.7 ** 2
        echoed = await probe(hosts, 400)
        assert 0.3 * 400 < echoed < 0.7 * 400
        hosts.set_loss(0)
        hosts.drop_multicast()  # mDNS only: the probe's port still passes
        assert await probe(hosts) == 200
