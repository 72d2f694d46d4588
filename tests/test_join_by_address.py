"""Join by address on the real stack: peers that mDNS cannot introduce mesh from one known address each."""

from __future__ import annotations

import itertools
import time
from typing import Any

import anyio
import pytest

from multihost import Hosts, open_hosts
from netns import ADDRESS, Namespace, PeerProcess, no_python_noise, open_namespace

pytestmark = pytest.mark.netns

PORT = 47000


def node_args(peer_id: str, *extra: str, n: int = 3, count: int = 5) -> list[str]:
    return [
        "-m",
        "tests.lan_peer",
        "--mode",
        "node",
        "--secret",
        "s",
        "--expect",
        str(n - 1),
        "--count",
        str(count),
        "--total",
        str(n * count),
        "--id",
        peer_id,
        *extra,
    ]


async def chain_without_multicast(hosts: Hosts) -> tuple[list[PeerProcess], float]:
    """p1 knows nobody (fixed port), p2 knows p1, p3 knows p2; mDNS dropped: all sync one counter.

    Returns the processes and the seconds from the last one entering ``Peer`` to the last synced.
    """
    hosts.drop_multicast()
    a1, a2 = hosts.addresses[0], hosts.addresses[1]
    specs = [
        (0, "p1", ["--listen-port", str(PORT)]),
        (1, "p2", ["--listen-port", str(PORT), "--peer", f"{a1}:{PORT}"]),
        (2, "p3", ["--peer", f"{a2}:{PORT}"]),
    ]
    nodes = [await hosts.spawn_on(host, node_args(name, *extra), name=name) for host, name, extra in specs]
    synced = [await node.wait_event("synced", within=20) for node in nodes]
    entered = [(await node.wait_event("entering"))["t"] for node in nodes]
    assert {s["count"] for s in synced} == {15}
    assert len({s["checksum"] for s in synced}) == 1
    assert len({s["master"] for s in synced}) == 1
    return nodes, max(s["t"] for s in synced) - max(entered)


async def test_three_hosts_mesh_by_address_with_multicast_dropped() -> None:
    async with open_hosts(3) as hosts:
        nodes, seconds = await chain_without_multicast(hosts)
        print(f"3 peers, one address each, no mDNS: synced {seconds:.3f} s after the last entered Peer")
        for node in nodes:
            await hosts.leave(node, within=15)
            no_python_noise(node)


async def statuses(peers: dict[str, PeerProcess]) -> dict[str, dict[str, Any]]:
    for peer in peers.values():
        peer.events[:] = [e for e in peer.events if e["ev"] != "status"]
        await peer.command("status")
    return {name: await peer.wait_event("status") for name, peer in peers.items()}


async def test_peer_exchange_meshes_a_chain_and_status_tells_how() -> None:
    async with open_hosts(3) as hosts:
        hosts.drop_multicast()
        a = hosts.addresses
        known = {"p1": [], "p2": ["--peer", f"{a[0]}:{PORT}"], "p3": ["--peer", f"{a[1]}:{PORT}"]}
        peers = {
            name: await hosts.spawn_on(
                i, ["-m", "tests.lan_peer", "--id", name, "--listen-port", str(PORT), *known[name]], name=name
            )
            for i, name in enumerate(known)
        }
        for name, peer in peers.items():
            await peer.wait_peers(set(peers) - {name}, within=20)
        status = {name: s["lan"] for name, s in (await statuses(peers)).items()}
        for name, lan in status.items():
            assert lan["seen"] == [], "mDNS is dropped: nobody is seen over it"
            assert lan["linked"] == sorted(set(peers) - {name})
            assert lan["mdns"] is True
        assert status["p2"]["addresses"] == [[f"{a[0]}:{PORT}", "linked to p1"]]
        assert status["p3"]["addresses"] == [[f"{a[1]}:{PORT}", "linked to p2"]]
        for name, peer in peers.items():
            assert len(peer.of("up")) == 2, f"{name} saw a link flap: {peer.of('up')}"
            assert not peer.of("down")
        for peer in peers.values():
            await hosts.leave(peer)
            no_python_noise(peer)


async def spawn_with_addresses(ns: Namespace, ids: list[str], *extra: str) -> dict[str, PeerProcess]:
    """Each peer listens on its own fixed port and is given every peer's address, its own included."""
    ports = {peer_id: PORT + i for i, peer_id in enumerate(ids)}
    everyone = [arg for port in ports.values() for arg in ("--peer", f"{ADDRESS}:{port}")]
    peers: dict[str, PeerProcess] = {}
    async with anyio.create_task_group() as tg:

        async def one(peer_id: str) -> None:
            peers[peer_id] = await ns.spawn_peer(peer_id, "--listen-port", str(ports[peer_id]), *everyone, *extra)

        for peer_id in ids:
            tg.start_soon(one, peer_id)
    return peers


async def test_everyone_dialing_everyone_at_once_makes_one_link_per_pair() -> None:
    """The same address list on every peer (mDNS on too): each pair still ends with one link, no flap."""
    async with open_namespace() as ns:
        peers = await spawn_with_addresses(ns, ["p0", "p1", "p2", "p3"], "--secret", "s")
        for peer_id, peer in peers.items():
            await peer.wait_peers(set(peers) - {peer_id}, within=15)
        await anyio.sleep(3.0)  # long enough for every retry and fallback dial to have happened
        for sender, receiver in itertools.permutations(peers, 2):
            await peers[sender].command("send", peer=receiver, data=f"{sender}>{receiver}")
        for sender, receiver in itertools.permutations(peers, 2):
            await peers[receiver].wait_event("frame", peer=sender, data=f"{sender}>{receiver}")
        status = await statuses(peers)
        for peer_id, peer in peers.items():
            ups = sorted(e["peer"] for e in peer.of("up"))
            assert ups == sorted(set(peers) - {peer_id}), f"{peer_id}: links went up {ups}"
            assert not peer.of("down"), f"{peer_id}: {peer.of('down')}"
            lan = status[peer_id]["lan"]
            assert [f"{ADDRESS}:{PORT + int(peer_id[1])}", "this peer's own address"] in lan["addresses"]
        for peer in peers.values():
            await ns.leave(peer)
            no_python_noise(peer)


async def test_an_address_that_is_down_is_retried_quietly_until_it_answers() -> None:
    async with open_namespace() as ns:
        waiting = await ns.spawn_peer("p1", "--peer", f"{ADDRESS}:{PORT}", "--log", "INFO")
        await anyio.sleep(3.0)  # nobody listens there yet: the first failure is logged, the retries are not
        started = time.monotonic()
        late = await ns.spawn_peer("p2", "--listen-port", str(PORT))
        up = await waiting.wait_event("up", peer="p2", within=10)
        await late.wait_peers({"p1"})
        print(f"linked {up['t'] - started:.2f} s after the late peer was spawned")
        assert waiting.stderr().count("cannot reach") == 1, waiting.stderr()
        with anyio.fail_after(10):  # p2 may have dialed first (mDNS): the address loop then finds p2 held
            while (lan := (await statuses({"p1": waiting}))["p1"]["lan"])["addresses"][0][1] != "linked to p2":  # noqa: ASYNC110
                await anyio.sleep(0.1)
        assert [reason for reason, _ in lan["refused"]] == ["unreachable or timed out"]
        await ns.leave(late)
        await waiting.wait_event("down", peer="p2")
        await ns.leave(waiting)
        no_python_noise(late)
