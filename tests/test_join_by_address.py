"""Join by address on the real stack: peers that mDNS cannot introduce mesh from one known address each."""

from __future__ import annotations

import functools
import itertools
import time
from typing import Any

import anyio
import pytest

from movex_p2p.testing.address_bed import chain_without_multicast
from movex_p2p.testing.multihost import open_hosts
from movex_p2p.testing.netns import ADDRESS, Namespace, PeerProcess, no_python_noise, open_namespace
from tests.test_lan_netns import status_when, unreachable

pytestmark = pytest.mark.netns

PORT = 47000
LINK = ["-m", "movex_p2p.testing.peer", "link"]


async def test_three_hosts_mesh_by_address_with_multicast_dropped() -> None:
    async with open_hosts(3) as hosts:
        run = await chain_without_multicast(hosts)
        print(f"3 peers, one address each, no mDNS: synced {run.synced - run.entered:.3f} s after the last entered")
        await hosts.leave_all(run.nodes, within=15)
        for node in run.nodes:
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
            name: await hosts.spawn_on(i, [*LINK, "--name", name, "--port", str(PORT), *known[name]], name=name)
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
        await hosts.leave_all(list(peers.values()))
        for peer in peers.values():
            no_python_noise(peer)


async def spawn_with_addresses(ns: Namespace, ids: list[str], *extra: str) -> dict[str, PeerProcess]:
    """Each peer listens on its own fixed port and is given every peer's address, its own included."""
    ports = {peer_id: PORT + i for i, peer_id in enumerate(ids)}
    everyone = [arg for port in ports.values() for arg in ("--peer", f"{ADDRESS}:{port}")]
    peers: dict[str, PeerProcess] = {}
    async with anyio.create_task_group() as tg:

        async def one(peer_id: str) -> None:
            peers[peer_id] = await ns.spawn_peer(peer_id, "--port", str(ports[peer_id]), *everyone, *extra)

        for peer_id in ids:
            tg.start_soon(one, peer_id)
    return peers


def settled(others: set[str], status: dict[str, Any]) -> bool:
    """Linked to ``others``, and every address loop holds its peer's link (it dials no more meanwhile)."""
    states = [state for _, state in status["lan"]["addresses"]]
    linked = all(state == "this peer's own address" or state.startswith("linked to ") for state in states)
    return set(status["lan"]["linked"]) == others and linked


async def test_everyone_dialing_everyone_at_once_makes_one_link_per_pair() -> None:
    """The same address list on every peer (mDNS on too): each pair still ends with one link, no flap."""
    async with open_namespace() as ns:
        peers = await spawn_with_addresses(ns, ["p0", "p1", "p2", "p3"], "--secret", "s")
        for peer_id, peer in peers.items():
            await peer.wait_peers(set(peers) - {peer_id}, within=15)
        # Every address loop has found its peer and holds its link (it dials no more while that
        # link is up), and every mDNS dial loop holds one too: no dial is left to cross a link.
        for peer_id, peer in peers.items():
            await status_when(peer, functools.partial(settled, set(peers) - {peer_id}))
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
        await ns.leave_all(list(peers.values()))
        for peer in peers.values():
            no_python_noise(peer)


async def test_an_address_that_is_down_is_retried_quietly_until_it_answers() -> None:
    async with open_namespace() as ns:
        waiting = await ns.spawn_peer("p1", "--peer", f"{ADDRESS}:{PORT}", "--log", "INFO")
        # nobody listens there yet: the first failure is logged, the retries are not (three failures)
        await status_when(waiting, lambda s: unreachable(s) >= 3)
        started = time.monotonic()
        late = await ns.spawn_peer("p2", "--port", str(PORT))
        up = await waiting.wait_event("up", peer="p2", within=10)
        await late.wait_peers({"p1"})
        print(f"linked {up['t'] - started:.2f} s after the late peer was spawned")
        assert waiting.stderr().count("cannot reach") == 1, waiting.stderr()
        # p2 may have dialed first (mDNS): the address loop then finds p2 held
        lan = (await status_when(waiting, lambda s: s["lan"]["addresses"][0][1] == "linked to p2", within=10))["lan"]
        assert [reason for reason, _ in lan["refused"]] == ["unreachable or timed out"]
        await ns.leave(late)
        await waiting.wait_event("down", peer="p2")
        await ns.leave(waiting)
        no_python_noise(late)


async def test_a_member_flooding_made_up_members_gets_bounded_hints_and_the_room_keeps_working() -> None:
    async with open_namespace() as ns:
        target = await ns.spawn_peer("p9", "--secret", "s", "--port", str(PORT))
        hostile = await ns.spawn(
            ["-m", "movex_p2p.testing.peer", "ghosts", "--secret", "s", "--port", str(PORT), "--count", "12"],
            name="hostile",
        )
        flood = await hostile.wait_event("ghosts", within=30)
        assert set(flood["outcomes"]) == {"RemoteProtocolError"}  # its SDP is refused, after the hints were read
        lan = (await statuses({"p9": target}))["p9"]["lan"]
        assert len(lan["learnt"]) <= 128, len(lan["learnt"])  # 12 x 32 made-up members offered
        assert lan["linked"] == []
        # the ghosts are unreachable: each hint is dropped after a few dials
        await status_when(target, lambda s: not s["lan"]["learnt"], within=15)
        friend = await ns.spawn_peer("p1", "--secret", "s", "--peer", f"{ADDRESS}:{PORT}")
        await friend.wait_peers({"p9"})
        await target.wait_peers({"p1"})
        await target.command("send", peer="p1", data="still here")
        await friend.wait_event("frame", peer="p9", data="still here")
        await ns.leave_all([friend, target])
        for peer in (friend, target):
            no_python_noise(peer)
