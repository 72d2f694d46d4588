"""Three peers share a counter on an in-process network; every increment is confirmed once.

Run: python examples/counter.py
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio

import movex_p2p as mx


def counter(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("increment"):
            return {**state, "count": state["count"] + 1}
        case mx.Action("incrementBy", int() as n):
            return {**state, "count": state["count"] + n}
    return state


Counter = mx.ResourceType("counter", counter, initial={"count": 0})


async def wait_for(res: mx.Resource, predicate: Callable[[Any], bool]) -> None:
    """Wait until ``predicate(state)`` holds for ``res``'s view."""
    async for state in res.updates():
        if predicate(state):
            return


async def main() -> None:
    network = mx.LocalNetwork()
    async with AsyncExitStack() as stack:
        peers = [
            await stack.enter_async_context(mx.Peer(room="demo", types=[Counter], name=name, transport=network, seed=i))
            for i, name in enumerate(["alice", "bob", "carol"])
        ]
        with anyio.fail_after(10):
            for peer in peers:
                await peer.wait_ready()
        master = next(p for p in peers if p.is_master)
        print(f"3 peers joined; master is {master.name}")
        rid = await peers[0].create(Counter, id="score")
        resources = [await peer.bind(rid) for peer in peers]
        with anyio.fail_after(10):
            handles = [res.dispatch(mx.Action("increment")) for res in resources for _ in range(3)]
            handles.append(resources[1].dispatch(mx.Action("incrementBy", 10)))
            for handle in handles:
                await handle
            for res in resources:
                await wait_for(res, lambda state: state["count"] == 19)
        for peer, res in zip(peers, resources, strict=True):
            count, version, checksum = res.state["count"], res.version, res.checksum[:8]
            print(f"{peer.name:>5} sees count={count} (version {version}, checksum {checksum})")
        assert all(res.state == {"count": 19} for res in resources)
        print("all peers agree: count=19")


if __name__ == "__main__":
    anyio.run(main)
