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
from movex_p2p.testing.netns import PEER, Namespace, PeerProcess, no_python_noise, open_namespace

pytestmark = pytest.mark.netns

GAME = [*PEER, "peer", "--room", "twins", "--counter"]


async def members(peer: PeerProcess) -> dict[str, object]:
    peer.events[:] = [e for e in peer.events if e["ev"] != "members"]
    await peer.command("members")
    return await peer.wait_event("members")


async def player(ns: Namespace, name: str, *extra: str) -> PeerProcess:
    process = await ns.spawn([*GAME, "--name", name, *extra], name=name)
    await process.wait_event("ready", within=30)
    return process


async def test_one_identity_in_two_lan_processes_is_reported_on_both_and_the_later_one_plays_on(
    tmp_path: Path,
) -> None:
    key = tmp_path / "twin.key"
    twin = Identity.load_or_create(key).id
    async with open_namespace() as ns:
        earlier = await player(ns, "earlier", "--identity", str(key))
        other = await player(ns, "other")
        await other.command("increment")
        await earlier.command("await_count", count=1)
        await earlier.wait_event("synced", count=1, within=20)  # one room of two
        later = await player(ns, "later", "--identity", str(key))
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
            await ns.leave(process)
            no_python_noise(process)


def told_at(process: PeerProcess) -> float:
    return float(next(e["t"] for e in process.events if e.get("kind") == "duplicate_identity"))
