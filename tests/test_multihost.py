"""Peers on separate hosts (namespaces joined by veth pairs and a bridge): discovery, sync, failover."""

from __future__ import annotations

import pytest

from movex_p2p.testing.address_bed import counting
from movex_p2p.testing.failover_bed import failover_run
from movex_p2p.testing.multihost import open_hosts

pytestmark = pytest.mark.netns


async def test_three_hosts_sync_a_counter() -> None:
    n, count = 3, 5
    async with open_hosts(n) as hosts:
        nodes = [
            await hosts.spawn(
                ["-m", "movex_p2p.testing.peer", *counting(n, count), "--name", f"h{i}"],
                name=f"h{i}",
            )
            for i in range(n)
        ]
        synced = [await node.wait_event("synced", within=40) for node in nodes]
        assert {s["count"] for s in synced} == {n * count}
        assert len({s["checksum"] for s in synced}) == 1
        assert len({s["master"] for s in synced}) == 1
        await hosts.leave_all(nodes, within=15)


async def test_master_host_killed_while_all_dispatch() -> None:
    async with open_hosts(3) as hosts:
        result = await failover_run(hosts, 3, mode="kill")
    assert not result.problems, "\n".join(result.problems)  # a str: pytest shows it whole
    assert (result.lost, result.doubled, result.checksums) == (0, 0, 1)
