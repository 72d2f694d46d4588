"""The test suite's shared reducers (Movex's spec resources, rewritten) and a spying Simulation.

Every test takes its resource types from here (one counter, one chat...); the counter, tally
and blob of the peer program and the benchmarks live in :mod:`movex_p2p.testing.types`. The
harnesses the tests drive are the package's: :class:`~movex_p2p.testing.cores.CoreCluster` (the
resource cores alone), :class:`~movex_p2p.simulation.Simulation` (whole peers in virtual time)
and :class:`~movex_p2p.election.sim.Cluster` (the election alone).
"""

from __future__ import annotations

from typing import Any, Final

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.ids import PeerId
from movex_p2p.simulation import Simulation
from movex_p2p.testing.types import Blob as Blob
from movex_p2p.testing.types import Counter as Counter
from movex_p2p.transport.base import Frame

Action = mx.Action

# -- counter: movex_p2p.testing.types (one definition, shared with the peer program) ------------


def mutating(state: Any, action: mx.Action) -> Any:
    """A bad reducer: mutates its input in place."""
    state["count"] += 1
    return state


Mutating: Final = mx.ResourceType("mutating", mutating, initial={"count": 0})

# -- chat ----------------------------------------------------------------------------------------

CHAT_INITIAL: Final[dict[str, Any]] = {"participants": {}, "messages": []}


def chat(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("addParticipant", {"id": pid, "color": color, "atTimestamp": at}):
            participant = {"id": pid, "color": color, "joinedAt": at, "active": True, "leftAt": None}
            return {**state, "participants": {**state["participants"], pid: participant}}
        case mx.Action("removeParticipant", {"id": pid, "atTimestamp": at}):
            if pid not in state["participants"]:
                return state
            left = {**state["participants"][pid], "active": False, "leftAt": at}
            return {**state, "participants": {**state["participants"], pid: left}}
        case mx.Action("writeMessage", {"participantId": pid, "msg": msg, "atTimestamp": at, "id": mid}):
            message = {"id": mid, "at": at, "content": msg, "participantId": pid}
            return {**state, "messages": [*state["messages"], message]}
    return state


Chat: Final = mx.ResourceType("chat", chat, initial=CHAT_INITIAL)

# -- rock paper scissors -------------------------------------------------------------------------

SECRET: Final = "$SECRET"
RPS_INITIAL: Final[dict[str, Any]] = {
    "players": {"playerA": None, "playerB": None},
    "submissions": {"playerA": None, "playerB": None},
    "winner": None,
}
_BEATS: Final = {"paper": "rock", "rock": "scissors", "scissors": "paper"}


def _winner(a: str | None, b: str | None) -> str | None:
    if a in (None, SECRET) or b in (None, SECRET):
        return None
    if a == b:
        return "1/2"
    return a if _BEATS[str(a)] == b else b


def rps(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("addPlayer", {"id": pid, "playerLabel": label}):
            if state["players"][label] is not None:
                return state
            return {**state, "players": {**state["players"], label: pid}}
        case mx.Action("submit", {"playerLabel": label, "rps": play}):  # the private half
            if state["winner"] is not None:
                return state
            subs = {**state["submissions"], label: {"play": play}}
            plays = [s["play"] if s else None for s in subs.values()]
            return {**state, "submissions": subs, "winner": _winner(*plays)}
        case mx.Action("setReadySubmission", {"playerLabel": label}):  # the public half
            if state["winner"] is not None:
                return state
            return {**state, "submissions": {**state["submissions"], label: {"play": SECRET}}}
        case mx.Action("playAgain"):
            return {**state, "submissions": {"playerA": None, "playerB": None}, "winner": None}
    return state


def rps_can_reveal(state: Any) -> bool:
    return all(s is not None for s in state["submissions"].values())


Rps: Final = mx.ResourceType("rps", rps, initial=RPS_INITIAL, can_reveal=rps_can_reveal)


def submit(label: str, play: str) -> tuple[mx.Action, mx.Action]:
    """The (private, public) pair of an RPS submission."""
    return (
        mx.Action("submit", {"playerLabel": label, "rps": play}),
        mx.Action("setReadySubmission", {"playerLabel": label}),
    )


# -- speed push: a transform completes the game on the master clock (scen8-like) ---------------

SPEED_INITIAL: Final[dict[str, Any]] = {
    "status": "pending",
    "winner": None,
    "lastPushBy": None,
    "lastPushAt": None,
    "timeToNext": 10.0,
}


def speed_push(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("push", {"at": at, "by": by}):
            if state["status"] == "completed" or state["lastPushBy"] == by:
                return state
            last = state["lastPushAt"]
            if state["status"] == "ongoing" and at > last + state["timeToNext"]:
                return {**state, "status": "completed", "winner": state["lastPushBy"]}
            return {**state, "status": "ongoing", "lastPushBy": by, "lastPushAt": at}
    return state


def speed_transform(state: Any, ctx: mx.TransformContext) -> Any:
    if state["status"] == "ongoing" and ctx.now > state["lastPushAt"] + state["timeToNext"]:
        return {**state, "status": "completed", "winner": state["lastPushBy"]}
    return state


SpeedPush: Final = mx.ResourceType("speed", speed_push, initial=SPEED_INITIAL, transform=speed_transform)

# -- a chess clock: the transform charges the side to move (non-idempotent if stored) ----------

CHESS_INITIAL: Final[dict[str, Any]] = {
    "status": "pending",
    "lastMoveBy": None,
    "lastMoveAt": None,
    "left": {"white": 30.0, "black": 30.0},
}


def chess(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("move", {"at": at, "by": by}):
            if state["status"] == "completed" or state["lastMoveBy"] == by:
                return state
            left = dict(state["left"])
            if state["lastMoveAt"] is not None:
                left[by] = max(0.0, left[by] - (at - state["lastMoveAt"]))
            if left[by] <= 0:
                return {**state, "status": "completed", "left": left}
            return {**state, "status": "ongoing", "lastMoveBy": by, "lastMoveAt": at, "left": left}
    return state


def chess_transform(state: Any, ctx: mx.TransformContext) -> Any:
    if state["status"] != "ongoing":
        return state
    to_move = "black" if state["lastMoveBy"] == "white" else "white"
    left = max(0.0, state["left"][to_move] - (ctx.now - state["lastMoveAt"]))
    return {**state, "left": {**state["left"], to_move: left}}


Chess: Final = mx.ResourceType("chess", chess, initial=CHESS_INITIAL, transform=chess_transform)

# -- a dice game with master values --------------------------------------------------------------


def dice(state: Any, action: mx.Action) -> Any:
    match action:
        case mx.Action("roll", payload):
            return {**state, "rolls": [*state["rolls"], payload]}
        case mx.Action("secretRoll", payload):
            return {**state, "secret": [*state["secret"], payload]}
        case mx.Action("ready"):
            return {**state, "ready": state["ready"] + 1}
    return state


Dice: Final = mx.ResourceType(
    "dice", dice, initial={"rolls": [], "secret": [], "ready": 0}, can_reveal=lambda s: s["ready"] >= 2
)

ALL_TYPES: Final = {t.name: t for t in (Counter, Mutating, Chat, Rps, SpeedPush, Chess, Dice)}


class SpySimulation(Simulation):
    """Every peer runs modified code that records every frame it receives (the master, whoever it is)."""

    def __init__(self, size: int, **kwargs: Any) -> None:
        self.received: list[tuple[float, PeerId, PeerId, bytes]] = []
        super().__init__(size, **kwargs)

    def _receive(self, pid: PeerId, events: list[Any]) -> None:
        self.received += [(self.now, e.peer, pid, e.data) for e in events if isinstance(e, Frame)]
        super()._receive(pid, events)

    def messages_to(self, pid: PeerId) -> list[wire.Message]:
        """Every message ``pid`` received."""
        return [m for _, _, dst, data in self.received if dst == pid for m in wire.decode(data)]

    def seen_by(self, marker: str, *, since: float = 0.0) -> list[tuple[PeerId, list[wire.Message]]]:
        """Who received ``marker`` (at or after ``since``), with the messages of that frame."""
        return [
            (dst, wire.decode(data)) for at, _, dst, data in self.received if at >= since and marker.encode() in data
        ]
