"""Leaving a room: ``await peer.close()`` and ``__aexit__``, for several peers of one task, in any order.

Before ``close()`` the peer's task group was entered in the caller's task by ``__aenter__``: a
cancel scope of that task, which anyio requires to be left last-in first-out, so leaving the
middle one of three peers raised "Attempted to exit a cancel scope that isn't the current
task's current cancel scope".
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

import movex_p2p as mx
from movex_p2p.ids import PeerId
from movex_p2p.testing import FaultyNetwork
from movex_p2p.transport.base import Endpoint
from tests.waits import settled


def counter(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("increment"):
            return {**state, "count": state["count"] + 1}
    return state


Counter = mx.ResourceType("counter", counter, initial={"count": 0})


async def _three(network: mx.LocalNetwork) -> list[mx.Peer]:
    """Three peers entered one after the other in this task, ready, all bound to ``counter:c``."""
    peers = [mx.Peer(room="r", types=[Counter], name=f"p{i}", transport=network, seed=i) for i in range(3)]
    for peer in peers:
        await peer.__aenter__()
    with anyio.fail_after(10):
        for peer in peers:
            await peer.wait_ready()
        for peer in peers:
            await peer.create(Counter, id="c")
    return peers


async def _play(peers: list[mx.Peer], expected: int) -> None:
    """Each peer dispatches once and waits for the master; then every view agrees on ``expected``."""
    with anyio.fail_after(10):
        resources = [await peer.bind("counter:c") for peer in peers]
        for res in resources:
            await res.dispatch(mx.Action("increment"))
    await settled(lambda: {res.confirmed["count"] for res in resources} == {expected}, *peers)


async def _closed_cleanly(peer: mx.Peer) -> None:
    with pytest.raises(mx.TransportError, match="the peer is closed"):
        await peer.create(Counter, id="c")
    await peer.close()  # idempotent


@pytest.mark.parametrize("leave", ["close", "aexit"])
async def test_peers_of_one_task_leave_in_any_order(leave: str) -> None:
    network = mx.LocalNetwork()
    p0, p1, p2 = await _three(network)
    await _play([p0, p1, p2], 3)

    async def out(peer: mx.Peer) -> None:
        if leave == "close":
            await peer.close()
        else:
            await peer.__aexit__(None, None, None)

    await out(p1)  # the middle one: not the last entered
    await _closed_cleanly(p1)
    await settled(lambda: p1.id not in p0.peers and p1.id not in p2.peers, p0, p2)
    await _play([p0, p2], 5)  # the others keep playing
    await out(p0)  # first entered, before the last one
    await _play([p2], 6)
    await out(p2)
    for peer in (p0, p1, p2):
        await _closed_cleanly(peer)
    gc.collect()  # an unclosed stream or task would warn here (warnings are errors)


async def test_a_master_closed_first_hands_over_and_nothing_is_lost() -> None:
    network = mx.LocalNetwork()
    peers = await _three(network)
    await _play(peers, 3)
    master = next(peer for peer in peers if peer.is_master)
    rest = [peer for peer in peers if peer is not master]
    term = master.term
    await master.close()
    await settled(lambda: all(peer.master_id not in (None, master.id) for peer in rest), *rest)
    assert all(peer.term > term for peer in rest)
    await _play(rest, 5)
    for peer in reversed(rest):
        await peer.close()


async def test_close_fails_what_still_waits_and_can_come_from_another_task() -> None:
    network = FaultyNetwork(seed=1)
    p0, p1, p2 = await _three(network)
    client = next(peer for peer in (p0, p1, p2) if not peer.is_master)
    res = await client.bind("counter:c")
    network.partition([client.id])  # cut off: its dispatch stays pending
    handle = res.dispatch(mx.Action("increment"))
    errors: list[BaseException] = []

    async def wait_for_it(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()  # nothing else runs until it awaits the handle
        try:
            await handle
        except mx.TransportError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        await tg.start(wait_for_it)
        assert not handle.done
        tg.start_soon(client.close)  # another task than the one that entered it
    assert [str(e) for e in errors] == ["the peer is closed"]
    with pytest.raises(mx.TransportError, match="the peer is closed"):
        res.dispatch(mx.Action("increment"))
    network.heal()
    for peer in (p0, p1, p2):
        await peer.close()


async def test_a_cancelled_caller_still_closes_the_peer() -> None:
    network = mx.LocalNetwork()
    peers = await _three(network)
    master = next(peer for peer in peers if peer.is_master)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await master.close()  # the handover is skipped, the transport still closes
    await _closed_cleanly(master)
    for peer in peers:
        await peer.close()


async def test_a_peer_is_entered_once() -> None:
    peer = mx.Peer(room="r", types=[Counter], transport=mx.LocalNetwork())
    await peer.close()  # never entered: nothing to do
    async with mx.Peer(room="r", types=[Counter], transport=mx.LocalNetwork()) as used:
        pass
    with pytest.raises(RuntimeError, match="joins a room once"):
        await used.__aenter__()


class _Unreachable:
    """A transport whose connect fails, as a LAN port already in use does."""

    @asynccontextmanager
    async def connect(
        self,
        *,
        peer_id: PeerId,
        name: str,
        room: str,
        secret: str | None,
        max_frame: int | None = None,
        role: str = "player",
        identity: mx.Identity | None = None,
    ) -> AsyncIterator[Endpoint]:
        raise mx.TransportError("cannot listen: busy")
        yield  # pragma: no cover


async def test_a_transport_that_fails_to_open_raises_from_aenter() -> None:
    peer = mx.Peer(room="r", types=[Counter], transport=_Unreachable())
    with pytest.raises(mx.TransportError, match="cannot listen: busy"):
        await peer.__aenter__()
    await _closed_cleanly(peer)


async def test_a_task_that_breaks_fails_the_peer_and_close_raises_it() -> None:
    peer = mx.Peer(room="r", types=[Counter], transport=mx.LocalNetwork())

    async def broken(driver: object) -> None:
        raise RuntimeError("bug in a peer task")

    peer._drive = broken  # type: ignore[method-assign]
    await peer.__aenter__()
    await settled(lambda: peer._failure is not None, peer)  # failing, the peer wakes its waiters
    with pytest.raises(mx.TransportError, match="the peer is closed") as caught:
        await peer.create(Counter, id="c")
    failure = caught.value.__cause__
    assert failure is not None
    assert "bug in a peer task" in repr(failure.__cause__)
    with pytest.raises(ExceptionGroup) as group:
        await peer.close()
    assert group.group_contains(RuntimeError, match="bug in a peer task")
    await peer.close()  # raised once; closed now


async def test_updates_end_and_callbacks_stop_when_the_peer_closes() -> None:
    network = mx.LocalNetwork()
    async with mx.Peer(room="r", types=[Counter], transport=network) as peer:
        await peer.wait_ready()
        res = await peer.bind(await peer.create(Counter, id="c"))
        seen: list[Any] = []
        res.on_update(seen.append)
        views: list[Any] = []

        async def read() -> None:
            views.extend([state async for state in res.updates()])

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await res.dispatch(mx.Action("increment"))
                await peer.close()  # ends read(): the task group can exit
    assert views[0] == {"count": 0} or views[0] == {"count": 1}
    assert views[-1] == {"count": 1}
    assert seen == [{"count": 1}]


async def test_a_peer_used_from_another_thread_says_what_to_use_instead() -> None:
    async with mx.Peer(room="r", types=[Counter], transport=mx.LocalNetwork()) as peer:
        await peer.wait_ready()
        res = await peer.bind(await peer.create(Counter, id="c"))
        errors: list[BaseException] = []

        def from_a_game_loop() -> None:
            try:
                res.dispatch(mx.Action("increment"))
            except RuntimeError as exc:
                errors.append(exc)

        await anyio.to_thread.run_sync(from_a_game_loop)
        assert len(errors) == 1
        assert "a Peer is not thread-safe" in str(errors[0])
        assert "movex_p2p.embed.start_peer" in str(errors[0])
        assert res.state == {"count": 0}  # nothing was applied
