"""A stranger on the LAN (no secret) against the real stack, every process in a private namespace.

Each test names what release 0.1 did under the same attack (reproduced when issue #9 was filed).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from movex_p2p.testing.netns import ADDRESS, Namespace, PeerProcess, no_python_noise, open_namespace
from movex_p2p.transport.meshcore import BUSY
from tests.test_lan_netns import status_when, unreachable

pytestmark = pytest.mark.netns

PORT = 47100


async def hostile(ns: Namespace, mode: str, *args: str) -> PeerProcess:
    return await ns.spawn(["-m", "movex_p2p.testing.peer", mode, *args], name=f"hostile-{mode}")


async def status(peer: PeerProcess) -> dict[str, object]:
    peer.events[:] = [e for e in peer.events if e["ev"] != "status"]
    await peer.command("status")
    return await peer.wait_event("status")


def dialed_in_vain_since(count: int, status: dict[str, Any]) -> bool:
    """``status``'s peer has more unanswered dials than ``count``."""
    return unreachable(status) > count


def bounded_refusals(status: dict[str, Any]) -> int:
    """Handshakes ``status``'s peer refused for the bounds on strangers (idle connections turned away)."""
    refused = dict(status["lan"]["refused"])
    bounded = ("refused: too many handshakes from that address", "pushed out by newer handshakes", BUSY)
    return sum(refused.get(reason, 0) for reason in bounded)


async def test_a_peer_joins_past_100_idle_connections_and_200_fake_members() -> None:
    """0.1: 32 idle TCP connections took every handshake slot, and no legitimate peer could join."""
    async with open_namespace() as ns:
        member = await ns.spawn_peer("p0", "--secret", "s", "--port", str(PORT))
        idle = await hostile(ns, "idle", "--port", str(PORT), "--count", "100")
        await idle.wait_event("ready")
        fakes = await hostile(ns, "announce", "--count", "200")
        await fakes.wait_event("announced", within=30)
        # the attack in place: idle strangers turned away, the fake members seen and being dialed in vain
        await status_when(
            member, lambda s: len(s["lan"]["seen"]) > 150 and bounded_refusals(s) > 0 and unreachable(s) > 0
        )
        await idle.command("report")
        assert (await idle.wait_event("holding"))["open"] >= 4  # it keeps (re)opening all 100
        newcomer = await ns.spawn_peer("p1", "--secret", "s")
        ready = (await newcomer.wait_event("ready"))["t"]
        up = await newcomer.wait_event("up", peer="p0", within=20)
        await member.wait_peers({"p1"})
        joined = up["t"] - ready
        print(f"joined {joined:.3f} s after entering, past 100 idle connections and 200 fake members")
        # the figure is printed (docs/security.md quotes it); the test asserts only that the attack
        # does not keep a peer out (0.1: it never joined): a timed target belongs in a benchmark.
        # 0.5-2.7 s on a quiet 2-vCPU machine, 5-9 s (once over 10 s) while another test suite loads it
        assert joined < 20.0
        lan = (await status(member))["lan"]
        assert isinstance(lan, dict)
        assert len(lan["seen"]) > 150, len(lan["seen"])  # the fake members were there
        assert bounded_refusals({"lan": lan}), lan["refused"]  # the idle strangers were turned away
        await newcomer.command("send", peer="p0", data="hello")
        await member.wait_event("frame", peer="p1", data="hello")
        for process in (idle, fakes):
            await process.command("stop")
        await ns.leave_all([newcomer, member])
        for peer in (newcomer, member):
            no_python_noise(peer)


async def test_ten_thousand_failed_handshakes_cost_under_10_mib() -> None:
    """0.1 kept every failed handshake with its traceback and offer: 10,000 tries cost 692 MiB."""
    async with open_namespace() as ns:
        member = await ns.spawn_peer("p0", "--secret", "s", "--port", str(PORT))
        warm = await hostile(ns, "fail", "--port", str(PORT), "--count", "400", "--parallel", "4")  # allocator warm-up
        await warm.wait_event("failed", within=60)
        before = (await status(member))["rss_kib"]
        flood = await hostile(ns, "fail", "--port", str(PORT), "--count", "10000", "--parallel", "8")
        outcomes = (await flood.wait_event("failed", within=300))["outcomes"]
        after = await status(member)
        assert isinstance(before, int)
        assert isinstance(after["rss_kib"], int)
        grown = (after["rss_kib"] - before) / 1024
        print(f"10,000 failed handshakes: RSS {before / 1024:.1f} -> {after['rss_kib'] / 1024:.1f} MiB; {outcomes}")
        assert grown <= 10, f"grew {grown:.1f} MiB"
        lan = after["lan"]
        assert isinstance(lan, dict)
        assert sum(n for _, n in lan["refused"]) >= 10_000 - 10  # counted, by reason
        friend = await ns.spawn_peer("p1", "--secret", "s", "--peer", f"{ADDRESS}:{PORT}")
        await friend.wait_peers({"p0"})  # the room still takes a legitimate peer
        await ns.leave_all([friend, member])
        for peer in (friend, member):
            no_python_noise(peer)


async def test_an_mdns_copy_of_a_live_peers_id_never_drops_its_link() -> None:
    """0.1: one mDNS record copying a real peer's id with a higher incarnation dropped the live link
    and marked the real peer refused: two masters and diverged checksums for as long as it lasted."""
    async with open_namespace() as ns:
        p0 = await ns.spawn_peer("p0", "--secret", "s")
        p1 = await ns.spawn_peer("p1", "--secret", "s")
        await p0.wait_peers({"p1"})
        await p1.wait_peers({"p0"})
        for victim in (p0, p1):
            ready = victim.of("ready")[0]
            before = {peer.name: unreachable(await status(peer)) for peer in (p0, p1)}
            copy = await hostile(ns, "announce", "--copy", str(ready["id"]))
            await copy.wait_event("announced", within=30)
            # the copy is seen, checked by a handshake (a dial to its address: by both, the victim
            # checking a twin of itself) and found out: nobody answers there
            for peer in (p0, p1):
                await status_when(peer, functools.partial(dialed_in_vain_since, before[peer.name]))
            await copy.command("stop")
        for peer, other in ((p0, "p1"), (p1, "p0")):
            assert not peer.of("down"), peer.of("down")
            assert len(peer.of("up")) == 1
            assert (await status(peer))["peers"] == [other]
        await p0.command("send", peer="p1", data="still linked")
        await p1.wait_event("frame", peer="p0", data="still linked")
        await ns.leave_all([p0, p1])
        for peer in (p0, p1):
            no_python_noise(peer)
