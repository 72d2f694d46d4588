"""Movex §5.2 scenarios on real Peers over LocalNetwork / FaultyNetwork (bounded by fail_after)."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import movex_p2p as mx
from tests.resources import SECRET, Chat, Counter, Dice, Rps, submit
from tests.waits import settled

TYPES = [Counter, Chat, Rps, Dice]


@asynccontextmanager
async def room(
    n: int, net: mx.LocalNetwork | None = None, *, seed: int = 0, types: Sequence[mx.ResourceType] = TYPES
) -> AsyncIterator[list[mx.Peer]]:
    network = net if net is not None else mx.LocalNetwork()
    async with AsyncExitStack() as stack:
        peers = [
            await stack.enter_async_context(
                mx.Peer(room="test", types=types, name=f"n{i}", info={"i": i}, transport=network, seed=seed + i)
            )
            for i in range(n)
        ]
        with anyio.fail_after(10):
            for peer in peers:
                await peer.wait_ready()
        await settled(lambda: all(p.master_id == peers[0].master_id and p.ready for p in peers), *peers)
        yield peers


async def test_create_bind_dispatch_await() -> None:
    async with room(3) as peers:
        assert sum(p.is_master for p in peers) == 1
        assert all(p.master_id == peers[0].master_id for p in peers)
        rid = await peers[1].create(Counter, {"count": 2}, id="c1")
        assert rid == "counter:c1"
        res = [await p.bind(rid) for p in peers]
        assert res[0].state == {"count": 2}
        with anyio.fail_after(5):
            handles = [r.dispatch(mx.Action("increment")) for r in res for _ in range(3)]
            assert res[2].state["count"] >= 3  # optimistic
            for h in handles:
                await h
        await settled(lambda: all(r.version == 9 for r in res), *peers)
        assert [r.state for r in res] == [{"count": 11}] * 3
        assert len({r.checksum for r in res}) == 1
        assert set(res[0].subscribers) == {p.id for p in peers}
        assert res[0].subscribers[peers[1].id] == {"i": 1}
        assert all(p.stats["resyncs"] == 0 for p in peers)


async def test_updates_and_on_update() -> None:
    async with room(2) as (a, b):
        rid = await a.create(Chat, id="room")
        ra, rb = await a.bind(rid), await b.bind(rid)
        seen: list[Any] = []
        unsubscribe = rb.on_update(seen.append)
        got: list[Any] = []

        async def watch() -> None:
            async for state in rb.updates():
                got.append(state)
                if len(state["messages"]) == 2:
                    return

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await anyio.lowlevel.checkpoint()
                for i, text in enumerate(["hi", "there"]):
                    msg = {"participantId": "a", "msg": text, "atTimestamp": mx.master.now(), "id": str(i)}
                    await ra.dispatch(mx.Action("writeMessage", msg))
        assert [m["content"] for m in got[-1]["messages"]] == ["hi", "there"]
        assert got[0]["messages"] == [] or len(got[0]["messages"]) <= 2
        assert seen
        assert seen[-1] == got[-1]
        unsubscribe()
        count = len(seen)
        await ra.dispatch(mx.Action("writeMessage", {"participantId": "a", "msg": "x", "atTimestamp": 1, "id": "9"}))
        await settled(lambda: len(rb.state["messages"]) == 3, b)
        assert len(seen) == count


async def test_rock_paper_scissors_private_then_reveal() -> None:
    async with room(3) as (a, b, spectator):
        rid = await a.create(Rps, id="g")
        ra, rb, rs = [await p.bind(rid) for p in (a, b, spectator)]
        await ra.dispatch(mx.Action("addPlayer", {"id": a.id, "playerLabel": "playerA"}))
        await rb.dispatch(mx.Action("addPlayer", {"id": b.id, "playerLabel": "playerB"}))
        await ra.dispatch_private(*submit("playerA", "paper"))
        await settled(lambda: rs.state["submissions"]["playerA"] is not None, spectator)
        assert ra.state["submissions"]["playerA"] == {"play": "paper"}
        assert rb.state["submissions"]["playerA"] == {"play": SECRET}
        assert rs.state["submissions"]["playerA"] == {"play": SECRET}
        await rb.dispatch_private(*submit("playerB", "rock"))
        await settled(lambda: all(r.state["winner"] is not None for r in (ra, rb, rs)), a, b, spectator)
        for r in (ra, rb, rs):
            assert r.state["winner"] == "paper"
            assert r.state["submissions"] == {"playerA": {"play": "paper"}, "playerB": {"play": "rock"}}
        assert len({r.checksum for r in (ra, rb, rs)}) == 1
        assert all(p.stats["resyncs"] == 0 for p in (a, b, spectator))


async def test_a_rejection_by_the_apps_reducer_is_chained_to_where_it_raised_at_the_dispatch() -> None:
    # Only the reducer's text crossed the network: the developer never saw the line that raised.
    async with room(2) as (a, b):
        rid = await a.create(Counter, id="c")
        rb = await b.bind(rid)
        with anyio.fail_after(5), pytest.raises(mx.ActionRejected, match="boom") as caught:
            await rb.dispatch(mx.Action("boom"))
        cause = caught.value.__cause__
        assert isinstance(cause, ValueError)
        assert cause.__traceback__ is not None
        assert traceback.extract_tb(cause.__traceback__)[-1].name == "counter"  # the reducer's own frame
        await rb.dispatch(mx.Action("increment"))  # a confirmation carries no cause


async def test_rejections_raise_and_roll_back() -> None:
    async with room(2) as (a, b):
        rid = await a.create(Counter, id="c")
        rb = await b.bind(rid)
        with anyio.fail_after(5):
            ok = rb.dispatch(mx.Action("increment"))
            with pytest.raises(mx.ActionRejected, match="boom"):
                await rb.dispatch(mx.Action("boom"))
            await ok
            with pytest.raises(mx.ActionRejected):
                await rb.dispatch(mx.Action("incrementBy", "x"))
        assert rb.state == {"count": 1}
        assert rb.pending == 0


async def test_unknown_rids() -> None:
    async with room(2) as (a, _):
        with anyio.fail_after(5):
            with pytest.raises(mx.ResourceNotFound):
                await a.bind("counter:missing")
            with pytest.raises(mx.ResourceNotFound):
                await a.get("counter:missing")
        with pytest.raises(mx.ProtocolError):
            await a.bind("no-colon")


async def test_master_values_roll() -> None:
    async with room(2) as peers:
        a, b = sorted(peers, key=lambda p: not p.is_master)  # b is the client: its roll waits
        rid = await a.create(Dice, id="d")
        ra, rb = await a.bind(rid), await b.bind(rid)
        handle = rb.dispatch(mx.Action("roll", {"n": mx.master.random_int(1, 6), "at": mx.master.now()}))
        assert rb.state["rolls"] == []  # waits for the master
        with anyio.fail_after(5):
            await handle
        await settled(lambda: ra.state["rolls"] == rb.state["rolls"], a, b)
        (roll,) = rb.state["rolls"]
        assert 1 <= roll["n"] <= 6
        assert isinstance(roll["at"], float)


async def test_late_joiner_gets_the_state_and_leavers_leave_presence() -> None:
    net = mx.LocalNetwork()
    async with room(2, net) as (a, b):
        rid = await a.create(Counter, {"count": 40}, id="c")
        ra = await a.bind(rid)
        await ra.dispatch(mx.Action("incrementBy", 2))
        changes: list[frozenset[str]] = []
        a.on_peers_changed(changes.append)
        async with mx.Peer(room="test", types=TYPES, name="late", transport=net, seed=99) as late:
            with anyio.fail_after(10):
                await late.wait_ready()
                rl = await late.bind(rid)
            assert rl.state == {"count": 42}
            assert rl.checksum == ra.checksum
            await settled(lambda: late.id in ra.subscribers, a)
            late_id = late.id
        await settled(lambda: late_id not in ra.subscribers, a)
        assert any(late_id in c for c in changes)
        assert late_id not in a.peers
        assert b.id in a.peers


async def test_malformed_frames_are_dropped() -> None:
    async with room(2) as (a, b):
        rid = await a.create(Counter, id="c")
        ra, rb = await a.bind(rid), await b.bind(rid)
        dropped = a.stats["dropped"] + b.stats["dropped"]
        attacker = b._endpoint
        assert attacker is not None
        for junk in (b"", b"\xff\x00garbage", b"\x82\x18\x21\x80", b"\x9f" * 1000, bytes(range(256))):
            attacker.send(a.id, junk)
        victim = a._endpoint
        assert victim is not None
        victim.send(b.id, b"\x83\x18\x26\x01")
        await ra.dispatch(mx.Action("increment"))
        await rb.dispatch(mx.Action("increment"))
        await settled(lambda: ra.state == rb.state == {"count": 2}, a, b)
        assert a.stats["dropped"] + b.stats["dropped"] >= dropped + 6


@pytest.mark.parametrize("seed", [1, 2])
async def test_master_killed_mid_dispatch_loses_and_doubles_nothing(seed: int) -> None:
    net = mx.testing.FaultyNetwork(seed, detect_after=0.3)
    async with room(4, net, seed=seed * 10) as peers:
        rid = await peers[0].create(Counter, id="c")
        bound = {p.id: await p.bind(rid) for p in peers}
        master = next(p for p in peers if p.is_master)
        survivors = [p for p in peers if p is not master]
        per_peer = 25
        handles = []
        for i in range(per_peer):
            handles += [bound[p.id].dispatch(mx.Action("increment")) for p in survivors]
            if i == 5:
                net.kill(master.id)
            await anyio.lowlevel.checkpoint()
        with anyio.fail_after(20):
            for h in handles:
                await h
        expected = per_peer * len(survivors)
        await settled(lambda: all(bound[p.id].state == {"count": expected} for p in survivors), *survivors)
        assert all(bound[p.id].confirmed == {"count": expected} for p in survivors)
        assert len({bound[p.id].checksum for p in survivors}) == 1
        new_master = {p.master_id for p in survivors}
        assert len(new_master) == 1
        assert master.id not in new_master
        assert all(p.term > 1 for p in survivors)
