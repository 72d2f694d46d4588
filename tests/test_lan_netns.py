"""LanTransport on the real stack (zeroconf + aiortc), every peer a process in a private namespace."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from movex_p2p.testing.address_bed import counting
from movex_p2p.testing.netns import ADDRESS, PEER, Namespace, PeerProcess, no_python_noise, open_namespace
from movex_p2p.testing.peer import identity_of

pytestmark = pytest.mark.netns


async def spawn_all(ns: Namespace, ids: list[str], *extra: str) -> dict[str, PeerProcess]:
    peers: dict[str, PeerProcess] = {}
    async with anyio.create_task_group() as tg:

        async def one(peer_id: str) -> None:
            peers[peer_id] = await ns.spawn_peer(peer_id, *extra)

        for peer_id in ids:
            tg.start_soon(one, peer_id)
    return peers


async def assert_full_mesh_exchange(peers: dict[str, PeerProcess]) -> None:
    ids = set(peers)
    for peer_id, peer in peers.items():
        await peer.wait_peers(ids - {peer_id}, within=15)
    for peer_id, peer in peers.items():
        await peer.command("send_all", data=f"hello from {peer_id}")
    for sender, receiver in itertools.permutations(ids, 2):
        await peers[receiver].wait_event("frame", peer=sender, data=f"hello from {sender}")


def _answered(peer: PeerProcess, asked: int, _: object) -> bool:
    return len(peer.of("status")) > asked


async def status_when(
    peer: PeerProcess, predicate: Callable[[dict[str, Any]], bool], *, within: float = 20.0
) -> dict[str, Any]:
    """Ask ``peer`` for its status until ``predicate`` holds for an answer; that answer."""
    with anyio.fail_after(within):
        while True:
            asked = len(peer.of("status"))
            await peer.command("status")
            await peer.wait_for(functools.partial(_answered, peer, asked))
            status = peer.of("status")[asked]
            if predicate(status):
                return status
            await anyio.sleep(0.05)  # ask again


def unreachable(status: dict[str, Any]) -> int:
    """Dials of ``status``'s peer that nobody answered."""
    return int(dict(status["lan"]["refused"]).get("unreachable or timed out", 0))


def declared_silent(peer: PeerProcess, name: str) -> bool:
    """``peer``'s transport logged that it heard nothing from ``name`` for ``dead_after`` and dropped
    its link: the heartbeat's verdict (the link's session closing underneath is not logged so)."""
    return f"{identity_of(name).id} silent for over" in peer.stderr_path.read_text()


async def leave_all(ns: Namespace, peers: dict[str, PeerProcess]) -> None:
    async with anyio.create_task_group() as tg:
        for peer in peers.values():
            tg.start_soon(ns.leave, peer)
    for peer in peers.values():
        no_python_noise(peer)


async def test_two_peers_link_and_exchange_frames() -> None:
    async with open_namespace() as ns:
        peers = await spawn_all(ns, ["p0", "p1"], "--secret", "s3cret")
        await assert_full_mesh_exchange(peers)
        await leave_all(ns, peers)


async def test_five_peers_form_a_full_mesh() -> None:
    async with open_namespace() as ns:
        peers = await spawn_all(ns, [f"p{i}" for i in range(5)], "--secret", "s3cret")
        await assert_full_mesh_exchange(peers)
        await leave_all(ns, peers)


async def test_late_joiner_connects_to_everyone() -> None:
    async with open_namespace() as ns:
        peers = await spawn_all(ns, ["p1", "p3", "p5"])
        for peer_id, peer in peers.items():
            await peer.wait_peers(set(peers) - {peer_id})
        # p2 sits in the middle: it dials p3 and p5, and p1 dials it.
        peers["p2"] = await ns.spawn_peer("p2")
        await assert_full_mesh_exchange(peers)
        await leave_all(ns, peers)


async def test_wrong_secret_gets_no_link_and_no_frame_and_other_rooms_are_ignored() -> None:
    async with open_namespace() as ns:
        good = await spawn_all(ns, ["p0", "p2"], "--secret", "right")
        bad = await ns.spawn_peer("p1", "--secret", "wrong")
        elsewhere = await ns.spawn_peer("p3", "--secret", "right", "--room", "another-room")
        await good["p0"].wait_peers({"p2"})
        # the lower id dials: p0 dials p1, p1 dials p2, and each refuses the other's proof
        for dialer in (good["p0"], bad):
            await status_when(dialer, lambda s: s["auth_failures"] >= 1)
        for peer in (*good.values(), bad):
            await peer.command("send_all", data="leak")
            await peer.command("status")
        statuses = {p.name: await p.wait_event("status") for p in (*good.values(), bad)}
        assert statuses["p1"]["peers"] == []
        assert statuses["p0"]["peers"] == ["p2"]
        assert statuses["p2"]["peers"] == ["p0"]
        assert statuses["p0"]["auth_failures"] >= 1  # p0 dialed p1 and refused its proof
        assert statuses["p1"]["auth_failures"] >= 1  # p1 dialed p2 and refused its proof
        await good["p2"].wait_event("frame", peer="p0", data="leak")
        await status_when(bad, lambda s: s["peers"] == [])  # it logs in order: what it got came before this
        assert not bad.of("up")
        assert not bad.of("frame")
        await elsewhere.command("status")
        assert (await elsewhere.wait_event("status"))["peers"] == []
        assert (await elsewhere.wait_event("status"))["auth_failures"] == 0  # never even dialed
        assert not elsewhere.of("up")
        assert all(e["peer"] != "p1" for p in good.values() for e in p.of("up") + p.of("frame"))
        await leave_all(ns, {**good, "p1": bad, "p3": elsewhere})


async def test_sigkilled_peer_is_declared_dead_by_the_heartbeat() -> None:
    async with open_namespace() as ns:
        peers = await spawn_all(ns, ["p0", "p1", "p2"])
        for peer_id, peer in peers.items():
            await peer.wait_peers(set(peers) - {peer_id})
        killed_at = time.monotonic()
        peers["p1"].kill()
        for survivor in ("p0", "p2"):
            down = await peers[survivor].wait_event("down", peer="p1", within=30)  # a bound on a hang only
            print(f"{survivor} declared p1 dead {down['t'] - killed_at:.3f} s after SIGKILL")
            # The heartbeat declared it dead (after dead_after of silence: ~1 s), not the WebRTC session
            # timing out underneath (ICE consent, SCTP: tens of seconds). How fast is a figure of
            # benchmarks/liveness.py, not asserted here.
            assert down["graceful"] is False
            assert declared_silent(peers[survivor], "p1"), peers[survivor].stderr()
        await peers["p0"].command("send", peer="p1", data="x")
        await peers["p0"].wait_event("send_failed", peer="p1")
        del peers["p1"]
        await leave_all(ns, peers)


@pytest.mark.parametrize("restarted", ["p0", "p1"])  # the dialing side, then the listening side
async def test_restarted_peer_reconnects(restarted: str) -> None:
    async with open_namespace() as ns:
        peers = await spawn_all(ns, ["p0", "p1"])
        await peers["p0"].wait_peers({"p1"})
        await peers["p1"].wait_peers({"p0"})
        other = "p1" if restarted == "p0" else "p0"
        peers[restarted].kill()
        await peers[restarted].process.wait()
        first_up = peers[other].of("up")[0]["t"]
        peers[restarted] = await ns.spawn_peer(restarted)  # same id, new incarnation
        await peers[other].wait_for(lambda e: e["ev"] == "up" and e["t"] > first_up, within=10)
        await peers[restarted].wait_peers({other})
        downs = peers[other].of("down")
        assert [d["graceful"] for d in downs] == [False]
        await assert_full_mesh_exchange(peers)
        await leave_all(ns, peers)


async def test_graceful_leave_is_seen_through_the_goodbye() -> None:
    async with open_namespace() as ns:
        peers = await spawn_all(ns, ["p0", "p1", "p2"])
        for peer_id, peer in peers.items():
            await peer.wait_peers(set(peers) - {peer_id})
        before = {name: unreachable(await status_when(peers[name], lambda s: True)) for name in ("p0", "p2")}
        asked_at = time.monotonic()
        await peers["p1"].command("leave")
        for survivor in ("p0", "p2"):
            down = await peers[survivor].wait_event("down", peer="p1", within=30)  # a bound on a hang only
            print(f"{survivor} saw p1 leave {down['t'] - asked_at:.3f} s after it was asked to")
            # Seen through p1's goodbye (graceful: the link ended on it), never by waiting out the
            # heartbeat's dead_after (that would be graceful=False, and logged as silent). How fast
            # is a figure of benchmarks/liveness.py, not asserted here.
            assert down["graceful"] is True
            assert not declared_silent(peers[survivor], "p1"), peers[survivor].stderr()
        await ns.leave(peers.pop("p1"))
        # no one redials a peer that said goodbye: each survivor's dial loop for p1 ends, having
        # dialed nobody (a redial of the exited p1 would count as unreachable and loop on)
        for name in ("p0", "p2"):
            status = await status_when(peers[name], lambda s: "p1" not in s["dialing"])
            assert unreachable(status) == before[name], status["lan"]["refused"]
            assert len(peers[name].of("up")) == 2
        await leave_all(ns, peers)


async def test_offers_carry_only_host_candidates() -> None:
    async with open_namespace() as ns:
        checker = await ns.spawn([*PEER, "offer"], name="offer")
        offer = await checker.wait_event("offer", within=20)
        assert offer["candidates"], "no candidate gathered"
        assert {kind for _, kind in offer["candidates"]} == {"host"}
        assert {address for address, _ in offer["candidates"]} == {ADDRESS}
        await checker.process.wait()
        no_python_noise(checker)


async def test_garbage_on_the_signaling_port_is_refused_and_the_listener_keeps_serving() -> None:
    async with open_namespace() as ns:
        target = await ns.spawn_peer("p9")
        port = (await target.wait_event("ready"))["port"]
        attacker = await ns.spawn([*PEER, "garbage", "--port", str(port)], name="garbage")
        await attacker.wait_event("done", within=60)
        assert [e["outcome"] for e in attacker.of("garbage")] == ["closed"] * 7
        friend = await ns.spawn_peer("p1")
        await assert_full_mesh_exchange({"p9": target, "p1": friend})
        await leave_all(ns, {"p9": target, "p1": friend})


async def test_peers_sync_a_counter_over_the_lan() -> None:
    """The node on the real stack: three movex_p2p.Peer processes, one counter, every increment seen by all."""
    n, count = 3, 5
    async with open_namespace() as ns:
        nodes = [await ns.spawn([*PEER, *counting(n, count), "--name", f"n{i}"], name=f"n{i}") for i in range(n)]
        synced = [await node.wait_event("synced", within=40) for node in nodes]
        assert {s["count"] for s in synced} == {n * count}
        assert len({s["checksum"] for s in synced}) == 1
        assert len({s["master"] for s in synced}) == 1
        async with anyio.create_task_group() as tg:
            for node in nodes:
                tg.start_soon(ns.leave, node)
        for node in nodes:
            no_python_noise(node)
