"""One identity in two processes on the real LAN stack (issue 19, I2), every process in a private namespace.

Release 0.2: the later process took the links (its newer incarnation proved the key to every
peer), and the earlier one, whose re-dials were refused, silently elected itself master of a
one-peer room and kept confirming its own actions. Now the earlier process dials the record of
its own id that the later one announces, the later one proves the key over the earlier one's
fresh nonce (and the earlier one over the later one's): both are told, the earlier one steps
aside and the room plays on with the later one.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from movex_p2p.identity import Identity
from movex_p2p.testing.multihost import open_hosts
from movex_p2p.testing.netns import PEER, PeerProcess, ProcessBed, no_python_noise, open_namespace

pytestmark = pytest.mark.netns

GAME = [*PEER, "peer", "--room", "twins", "--counter"]


async def members(peer: PeerProcess) -> dict[str, object]:
    peer.events[:] = [e for e in peer.events if e["ev"] != "members"]
    await peer.command("members")
    return await peer.wait_event("members")


async def player(bed: ProcessBed, name: str, *extra: str) -> PeerProcess:
    process = await bed.spawn([*GAME, "--name", name, *extra], name=name)
    await process.wait_event("ready", within=30)
    return process


async def twins_in_a_room(bed: ProcessBed, key: Path) -> None:
    """``earlier`` and ``other`` play; ``later`` joins with ``earlier``'s identity file (each spawned in turn)."""
    twin = Identity.load_or_create(key).id
    earlier = await player(bed, "earlier", "--identity", str(key))
    other = await player(bed, "other")
    await other.command("increment")
    await earlier.command("await_count", count=1)
    await earlier.wait_event("synced", count=1, within=20)  # one room of two
    later = await player(bed, "later", "--identity", str(key))
    told = {}
    for process in (earlier, later):
        diagnostic = await process.wait_event("diagnostic", kind="duplicate_identity", within=15)
        told[process.name] = diagnostic["reason"]
    print(f"\nearlier: {told['earlier']}\nlater: {told['later']}")
    entered = later.of("entering")[0]["t"]
    print(f"both told {max(told_at(p) for p in (earlier, later)) - entered:.2f} s after the later one entered")
    assert "stepped aside (it is no master" in str(told["earlier"])
    assert "the other stepped aside" in str(told["later"])
    # the later one plays with the third peer
    await later.command("increment", n=3)
    await other.command("await_count", count=4)
    synced = await other.wait_event("synced", count=4, within=20)
    await later.command("await_count", count=4)
    await later.wait_event("synced", count=4, within=20)
    assert (await members(other))["peers"] == [twin]
    print(f"master of the room: {synced['master']} (the twin's id: {twin})")
    # the earlier one holds nothing and is no master, now or a while later (0.2: master of a room of its own)
    for _ in range(3):
        seen = await members(earlier)
        assert not seen["is_master"], seen
        assert seen["peers"] == [], seen
        await anyio.sleep(1.0)
    stepped = told_at(earlier)
    assert [e for e in earlier.of("master") if e["master"] == twin and e["t"] > stepped] == []
    for process in (later, other, earlier):
        await bed.leave(process)
        no_python_noise(process)


async def test_one_identity_in_two_lan_processes_is_reported_on_both_and_the_later_one_plays_on(
    tmp_path: Path,
) -> None:
    async with open_namespace() as ns:
        await twins_in_a_room(ns, tmp_path / "twin.key")


async def test_twins_on_two_hosts_are_reported_on_both_and_the_later_one_plays_on(tmp_path: Path) -> None:
    """The same with each process on a host of its own (three hosts on a bridge): the twins have two addresses."""
    async with open_hosts(3) as hosts:
        await twins_in_a_room(hosts, tmp_path / "twin.key")


def told_at(process: PeerProcess) -> float:
    return float(next(e["t"] for e in process.events if e.get("kind") == "duplicate_identity"))
