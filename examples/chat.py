"""A chat room: participants join, write, leave; presence shows who is bound.

Run: python examples/chat.py
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio

import movex_p2p as mx


def chat(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("join", {"name": name, "at": at}):
            return {**state, "participants": {**state["participants"], name: {"joinedAt": at}}}
        case mx.Action("write", {"name": name, "text": text, "at": at, "id": id}):
            message = {"id": id, "from": name, "text": text, "at": at}
            return {**state, "messages": [*state["messages"], message]}
    return state


Chat = mx.ResourceType("chat", chat, initial={"participants": {}, "messages": []})


async def wait_for(res: mx.Resource, predicate: Callable[[Any], bool]) -> None:
    """Wait until ``predicate(state)`` holds for ``res``'s view."""
    async for state in res.updates():
        if predicate(state):
            return


async def main() -> None:
    network = mx.LocalNetwork()
    names = ["ana", "ben", "cy"]
    async with AsyncExitStack() as stack:
        peers = [
            await stack.enter_async_context(
                mx.Peer(room="chat", types=[Chat], name=name, info={"name": name}, transport=network, seed=i)
            )
            for i, name in enumerate(names)
        ]
        with anyio.fail_after(10):
            for peer in peers:
                await peer.wait_ready()
        rid = await peers[0].create(Chat, id="lobby")
        rooms = [await peer.bind(rid) for peer in peers]
        print("subscribers:", sorted(info["name"] for info in rooms[0].subscribers.values()))
        with anyio.fail_after(10):
            for name, room in zip(names, rooms, strict=True):
                await room.dispatch(mx.Action("join", {"name": name, "at": mx.master.now()}))
            lines = [("ana", "hi all"), ("ben", "hey ana"), ("cy", "gg")]
            for name, text in lines:
                room = rooms[names.index(name)]
                payload = {"name": name, "text": text, "at": mx.master.now(), "id": mx.master.uuid()}
                await room.dispatch(mx.Action("write", payload))
            for room in rooms:
                await wait_for(room, lambda state: len(state["messages"]) == 3)
        for message in rooms[2].state["messages"]:
            print(f"  <{message['from']}> {message['text']}")
        await rooms[2].unbind()
        with anyio.fail_after(5):
            await wait_for(rooms[0], lambda _: len(rooms[0].subscribers) == 2)
        print("cy left; subscribers:", sorted(info["name"] for info in rooms[0].subscribers.values()))
        assert len({room.checksum for room in rooms}) == 1
        print("chat in sync on every peer")


if __name__ == "__main__":
    anyio.run(main)
