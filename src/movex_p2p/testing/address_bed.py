"""Join by address on the multi-host bed, mDNS dropped: shared by tests/test_join_by_address.py and the benchmark.

p1 knows nobody and listens on a fixed port, p2 knows p1, p3 knows p2: they must mesh through
peer exchange and sync one counter. Every peer runs without ``fcntl`` (:data:`.netns.WITHOUT_FCNTL`),
as it would on Windows. Times are CLOCK_MONOTONIC, shared by every process on the machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .multihost import Hosts
from .netns import WITHOUT_FCNTL, PeerProcess

PORT = 47000
COUNT = 5


def node_args(peer_id: str, *extra: str, n: int = 3, count: int = COUNT) -> list[str]:
    """A peer of ``n`` that adds ``count`` to ``counter:c`` once ready, then reports ``synced`` at ``n * count``."""
    return [
        *WITHOUT_FCNTL,
        "movex_p2p.testing.peer",
        *counting(n, count),
        "--name",
        peer_id,
        *extra,
    ]


def counting(n: int, count: int) -> list[str]:
    """The peer program's arguments for one of ``n`` peers that each add ``count`` to one counter."""
    script = [{"cmd": "increment", "n": count}, {"cmd": "await_count", "count": n * count}]
    return ["peer", "--secret", "s", "--counter", "--expect", str(n - 1), *(f"--do={json.dumps(c)}" for c in script)]


@dataclass
class ChainRun:
    """One run: the processes and when things happened."""

    nodes: list[PeerProcess]
    spawned: float
    """When the last process was spawned."""
    entered: float
    """When the last process entered ``Peer`` (its imports done)."""
    meshed: float
    """When the last process had links to both others and a master."""
    synced: float
    """When the last process saw every increment of every peer."""


async def chain_without_multicast(hosts: Hosts, *, by_address: bool = True) -> ChainRun:
    """Run the chain on a fresh 3-host bed; assert the room synced one counter.

    ``by_address=False``: the baseline, mDNS left on and no address given.
    """
    a1, a2 = hosts.addresses[0], hosts.addresses[1]
    specs = [
        (0, "p1", ["--port", str(PORT)]),
        (1, "p2", ["--port", str(PORT), "--peer", f"{a1}:{PORT}"]),
        (2, "p3", ["--peer", f"{a2}:{PORT}"]),
    ]
    if by_address:
        hosts.drop_multicast()
    else:
        specs = [(host, name, []) for host, name, _ in specs]
    nodes = []
    spawned = 0.0
    for host, name, extra in specs:
        spawned = time.monotonic()
        nodes.append(await hosts.spawn_on(host, node_args(name, *extra), name=name))
    synced = [await node.wait_event("synced", within=20) for node in nodes]
    ready = [await node.wait_event("room") for node in nodes]
    entered = [await node.wait_event("entering") for node in nodes]
    assert {s["count"] for s in synced} == {3 * COUNT}
    assert len({s["checksum"] for s in synced}) == 1
    assert len({s["master"] for s in synced}) == 1
    return ChainRun(
        nodes=nodes,
        spawned=spawned,
        entered=max(e["t"] for e in entered),
        meshed=max(r["t"] for r in ready),
        synced=max(s["t"] for s in synced),
    )


async def chain_links(hosts: Hosts) -> tuple[list[PeerProcess], float]:
    """The same chain with transport-only peers (the peer program's ``link`` role): seconds from the last
    endpoint listening to the last of the three links open."""
    hosts.drop_multicast()
    a1, a2 = hosts.addresses[0], hosts.addresses[1]
    known = {"p1": [], "p2": ["--peer", f"{a1}:{PORT}"], "p3": ["--peer", f"{a2}:{PORT}"]}
    peers = {
        name: await hosts.spawn_on(
            host, ["-m", "movex_p2p.testing.peer", "link", "--name", name, "--port", str(PORT), *extra], name=name
        )
        for host, (name, extra) in enumerate(known.items())
    }
    last_up = max([await peer.wait_peers(set(peers) - {name}, within=20) for name, peer in peers.items()])
    last_ready = max([(await peer.wait_event("ready"))["t"] for peer in peers.values()])
    return list(peers.values()), last_up - last_ready
