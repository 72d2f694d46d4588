"""What docs/concepts.md says of dispatches made while the master changes, and at startup."""

from __future__ import annotations

from typing import Any

import anyio

import movex_p2p as mx
from movex_p2p.testing import FaultyNetwork


def counter(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("increment"):
            return {**state, "count": state["count"] + 1}
    return state


Counter = mx.ResourceType("counter", counter, initial={"count": 0})


async def test_create_and_bind_before_any_master_wait_for_the_first_one() -> None:
    async with mx.Peer(room="r", types=[Counter], transport=mx.LocalNetwork(), seed=1) as peer:
        assert peer.master_id is None  # just entered: no master elected yet
        with anyio.fail_after(5):
            res = await peer.bind(await peer.create(Counter, id="c"))
        assert peer.master_id == peer.id
        await res.dispatch(mx.Action("increment"))
        assert res.confirmed == {"count": 1}


async def test_a_dispatch_made_while_no_master_is_known_is_confirmed_by_the_next_one() -> None:
    network = FaultyNetwork(seed=3, detect_after=0.3)
    peers = [mx.Peer(room="r", types=[Counter], transport=network, name=f"p{i}", seed=i) for i in range(3)]
    for peer in peers:
        await peer.__aenter__()
    with anyio.fail_after(10):
        for peer in peers:
            await peer.wait_ready()
        rid = await peers[0].create(Counter, id="c")
        resources = [await peer.bind(rid) for peer in peers]
    master = next(peer for peer in peers if peer.is_master)
    client, res = next((p, r) for p, r in zip(peers, resources, strict=True) if p is not master)
    handles: list[mx.DispatchHandle] = []
    seen: list[object] = []
    dispatched = anyio.Event()

    def masterless(master_id: str | None, term: int) -> None:
        """Dispatch in the very step that tells the app no master is known (the old one declared dead)."""
        if master_id is None and not handles:
            handles.append(res.dispatch(mx.Action("increment")))
            seen.append(res.state)
            dispatched.set()

    client.on_master_changed(masterless)
    network.kill(master.id)
    with anyio.fail_after(5):
        await dispatched.wait()
    assert seen == [{"count": 1}]  # optimistic, at once
    with anyio.fail_after(10):
        await handles[0]
    assert client.master_id not in (None, master.id)
    assert res.confirmed == {"count": 1}
    for peer in peers:
        await peer.close()
