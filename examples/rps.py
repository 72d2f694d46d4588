"""Rock-paper-scissors with sealed private moves: each play stays secret until both have played,
from the master too (``private="sealed"``: a player keeps its move and sends only a commitment;
both open their moves when both have played, and every peer checks them).

Run: python examples/rps.py
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio

import movex_p2p as mx

SECRET = "$SECRET"
BEATS = {"paper": "rock", "rock": "scissors", "scissors": "paper"}
INITIAL: dict[str, Any] = {"plays": {"A": None, "B": None}, "winner": None}


def rps(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("ready", {"player": player}):  # public half: "I have played"
            return {**state, "plays": {**state["plays"], player: SECRET}}
        case mx.Action("play", {"player": player, "move": move}):  # private half: the move
            plays = {**state["plays"], player: move}
            a, b = plays["A"], plays["B"]
            winner = None
            if a not in (None, SECRET) and b not in (None, SECRET):
                winner = "draw" if a == b else ("A" if BEATS[a] == b else "B")
            return {**state, "plays": plays, "winner": winner}
    return state


Rps = mx.ResourceType(
    "rps", rps, initial=INITIAL, can_reveal=lambda s: None not in s["plays"].values(), private="sealed"
)


async def wait_for(res: mx.Resource, predicate: Callable[[Any], bool]) -> None:
    """Wait until ``predicate(state)`` holds for ``res``'s view."""
    async for state in res.updates():
        if predicate(state):
            return


def play(player: str, move: str) -> tuple[mx.Action, mx.Action]:
    return mx.Action("play", {"player": player, "move": move}), mx.Action("ready", {"player": player})


async def main() -> None:
    network = mx.LocalNetwork()
    async with AsyncExitStack() as stack:
        peers = [
            await stack.enter_async_context(mx.Peer(room="rps", types=[Rps], name=name, transport=network, seed=i))
            for i, name in enumerate(["alice", "bob", "spectator"])
        ]
        with anyio.fail_after(10):
            for peer in peers:
                await peer.wait_ready()
        rid = await peers[0].create(Rps, id="match")
        alice, bob, spectator = [await peer.bind(rid) for peer in peers]
        with anyio.fail_after(10):
            await alice.dispatch_private(*play("A", "paper"))
            await wait_for(spectator, lambda state: state["plays"]["A"] is not None)
            print("alice sees  ", alice.state["plays"])
            print("bob sees    ", bob.state["plays"])
            await bob.dispatch_private(*play("B", "rock"))
            for res in (alice, bob, spectator):
                await wait_for(res, lambda state: state["winner"] is not None)
        print("revealed    ", spectator.state["plays"])
        print("winner:", spectator.state["winner"])
        assert alice.checksum == bob.checksum == spectator.checksum


if __name__ == "__main__":
    anyio.run(main)
