"""The driver: one task steps the core, at its deadlines and on input, no polling; the event stream; the Endpoint."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.ids import PeerId, Term
from movex_p2p.nodecore import NodeCore
from movex_p2p.resource import messages as rm
from movex_p2p.transport.base import Endpoint, PeerUp, TransportEvent
from tests.resources import Counter
from tests.waits import settled


def _count_steps(core: NodeCore) -> Tally[str]:
    """Count the calls that step ``core`` (whatever the driver's entry point is)."""
    calls: Tally[str] = Tally()
    for name in ("step", "receive", "tick"):
        method = getattr(core, name, None)
        if method is None:
            continue

        def counting(*args: Any, _name: str = name, _method: Callable[..., Any] = method) -> Any:
            calls[_name] += 1
            return _method(*args)

        setattr(core, name, counting)
    return calls


async def test_an_idle_peer_steps_its_core_only_at_its_deadlines() -> None:
    """A master alone in its room wakes for its heartbeat timer (every 0.1 s), not every 10 ms."""
    async with mx.Peer(room="r", types=[Counter], transport=mx.LocalNetwork(), seed=1) as peer:
        await peer.wait_ready()
        assert peer.is_master
        calls = _count_steps(peer._core)
        await anyio.sleep(0.5)
        deadlines = 0.5 / mx.ElectionConfig().heartbeat_interval
        assert sum(calls.values()) <= deadlines + 3, calls  # the 10 ms ticker stepped it ~50 times


async def test_a_burst_of_dispatches_leaves_as_one_frame_per_peer_at_the_end_of_the_turn() -> None:
    network = mx.LocalNetwork()
    async with (
        mx.Peer(room="r", types=[Counter], transport=network, seed=1) as a,
        mx.Peer(room="r", types=[Counter], transport=network, seed=2) as b,
    ):
        await a.wait_ready()
        await b.wait_ready()
        client = b if a.is_master else a
        res = await client.bind(await client.create(Counter, id="c"))
        endpoint = client._endpoint
        assert endpoint is not None
        sent: list[bytes] = []
        send = endpoint.send

        def spy(peer: PeerId, data: bytes) -> None:
            sent.append(data)
            send(peer, data)

        endpoint.send = spy  # type: ignore[method-assign]
        handles = [res.dispatch(mx.Action("increment")) for _ in range(20)]
        assert sent == []  # nothing left during the burst
        assert res.state == {"count": 20}  # the view has them all at once
        await anyio.lowlevel.checkpoint()  # the end of the turn
        proposing = [[m for m in wire.decode(frame) if isinstance(m, rm.Propose)] for frame in sent]
        assert [len(p) for p in proposing if p] == [20]  # one frame to the master for the whole burst
        with anyio.fail_after(5):
            for handle in handles:
                await handle


async def test_a_masters_own_dispatch_settles_in_the_call() -> None:
    async with mx.Peer(room="r", types=[Counter], transport=mx.LocalNetwork(), seed=1) as peer:
        await peer.wait_ready()
        res = await peer.bind(await peer.create(Counter, id="c"))
        handle = res.dispatch(mx.Action("increment"))
        assert handle.done
        assert handle.error is None
        assert res.confirmed == {"count": 1}


async def test_events_is_one_stream_the_callbacks_also_read() -> None:
    network = mx.LocalNetwork()
    async with mx.Peer(room="r", types=[Counter], transport=network, seed=1) as a:
        await a.wait_ready()
        reader = a.events()
        heard: list[mx.PeerEvent] = []
        joined: list[str] = []
        a.on_event(heard.append)
        a.on_peer_joined(lambda info: joined.append(info.id))
        async with mx.Peer(room="r", types=[Counter], transport=network, seed=2) as b:
            await b.wait_ready()
            seen: list[mx.PeerEvent] = []
            with anyio.fail_after(5):
                async for event in reader:
                    seen.append(event)
                    if isinstance(event, mx.PeerJoined):
                        break
            assert mx.PeersChanged(peers=frozenset({b.id})) in seen
            assert seen[-1] == mx.PeerJoined(info=a.members[b.id])
            assert joined == [b.id]
            assert heard[: len(seen)] == seen  # callbacks and the iterator see the same events, in order
            rid = await a.create(Counter, id="gone")
            await a.remove(rid)
            with anyio.fail_after(5):
                async for event in reader:
                    if isinstance(event, mx.ResourceRemoved):
                        assert event.rid == rid
                        break
    rest = [event async for event in reader]  # the peer closed: the iteration ends
    assert all(isinstance(event, mx.PeerEvent) for event in rest)


async def test_a_reader_that_falls_behind_keeps_the_latest_events_only() -> None:
    from movex_p2p.events import READER_LIMIT, EventStream

    stream = EventStream()
    reader = stream.reader()
    for term in range(READER_LIMIT + 10):
        stream.publish(mx.MasterChanged(master=None, term=Term(term)))
    stream.close()
    terms = [event.term async for event in reader if isinstance(event, mx.MasterChanged)]
    assert terms == list(range(10, READER_LIMIT + 10))


async def test_the_in_process_endpoint_tells_its_status_as_the_lan_one_does() -> None:
    network = mx.LocalNetwork()
    async with (
        network.connect(peer_id=PeerId("a"), name="a", room="r", secret="s") as a,
        network.connect(peer_id=PeerId("b"), name="b", room="r", secret="s") as b,
        network.connect(peer_id=PeerId("c"), name="c", room="r", secret="other") as c,
        network.connect(peer_id=PeerId("d"), name="d", room="elsewhere", secret="s"),
    ):
        with anyio.fail_after(5):
            while PeerId("b") not in a.peers:
                await a.receive()
        status = a.status()
        assert status.seen == ("b", "c")  # the room's peers, linked or not
        assert status.linked == ("b",)
        assert status.refused == (("wrong secret", 1),)
        assert a.refused["wrong secret"] == 1
        assert "c does not hold our room secret" in a.auth_failures
        assert c.status().linked == ()
        assert c.refused["wrong secret"] == 2
        assert b.status().seen == ("a", "c")
        drained = _drain(b)  # what is queued is there at once, then WouldBlock
        assert PeerUp(peer=PeerId("a"), name="a") in drained
        assert b.peers == {PeerId("a")}


def _drain(endpoint: Endpoint) -> list[TransportEvent]:
    events: list[TransportEvent] = []
    while True:
        try:
            events.append(endpoint.receive_nowait())
        except anyio.WouldBlock:
            return events


async def test_a_bug_in_the_end_of_turn_step_fails_the_peer_and_close_raises_it() -> None:
    network = mx.LocalNetwork()
    peer = mx.Peer(room="r", types=[Counter], transport=network, seed=1)
    await peer.__aenter__()
    other = mx.Peer(room="r", types=[Counter], transport=network, seed=2)
    await other.__aenter__()
    try:
        await peer.wait_ready()
        await other.wait_ready()
        client = other if peer.is_master else peer
        res = await client.bind(await client.create(Counter, id="c"))

        def broken(*args: Any) -> Any:
            raise RuntimeError("bug in a step")

        client._core.step = broken  # type: ignore[method-assign,assignment]
        res.dispatch(mx.Action("increment"))
        await settled(lambda: client._failure is not None, client)  # failing, the peer wakes its waiters
    finally:
        master = peer if client is other else other
        await master.close()
        with pytest.raises(ExceptionGroup) as group:
            await client.close()
    assert group.group_contains(RuntimeError, match="bug in a step")
