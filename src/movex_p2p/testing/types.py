"""The resource types of the peer program and the process beds (the test suite uses the same ones)."""

from __future__ import annotations

from typing import Any, Final

from .. import Action, ResourceType

__all__ = ["Blob", "Counter", "Cup", "Dice", "Tally", "blob", "counter", "cup", "dice", "tally"]


def counter(state: Any, action: Action) -> Any:
    """A count with a few test verbs (``increment``, ``incrementBy``, ``boom``, ``drop``, ``set``...)."""
    match action:
        case Action("increment"):
            return {**state, "count": state["count"] + 1}
        case Action("decrement"):
            return {**state, "count": state["count"] - 1}
        case Action("incrementBy", int() as n):
            return {**state, "count": state["count"] + n}
        case Action("incrementBy", n):
            raise TypeError(f"incrementBy needs an int, not {n!r}")
        case Action("change", n):
            return {**state, "count": n}
        case Action("append", item):
            return {**state, "items": [*state.get("items", []), item]}
        case Action("boom"):
            raise ValueError("boom")
        case Action("drop", key):  # deletes a key (S4: must not be resurrected)
            return {k: v for k, v in state.items() if k != key}
        case Action("set", [key, value]):
            return {**state, key: value}
    return state


Counter: Final = ResourceType("counter", counter, initial={"count": 0})


def tally(state: Any, action: Action) -> Any:
    """Per-peer counters: ``inc(peer_id)`` adds one to that peer's count (the process beds' resource)."""
    match action:
        case Action("inc", str(who)):
            return {**state, who: state.get(who, 0) + 1}
    return state


Tally: Final = ResourceType("tally", tally, initial={})


def blob(state: Any, action: Action) -> Any:
    """A big state: ``put(bytes)`` replaces it (late joins and snapshots of megabytes)."""
    match action:
        case Action("put", bytes(data)):
            return {"data": data}
    return state


Blob: Final = ResourceType("blob", blob, initial={"data": b""})


def dice(state: Any, action: Action) -> Any:
    """One public die: ``roll({"die": n})`` keeps the last roll (the fair-draw benchmarks' resource)."""
    match action:
        case Action("roll", dict(payload)):
            return {"last": payload, "count": state["count"] + 1}
    return state


Dice: Final = ResourceType("dice", dice, initial={"last": None, "count": 0})


def cup(state: Any, action: Action) -> Any:
    """Hidden dice in a sealed private half: ``roll`` (private: the author's hand), ``rolled`` (public)."""
    match action:
        case Action("roll", dict(payload)):
            return {**state, "hands": {**state["hands"], action.author: payload}}
        case Action("rolled"):
            return {**state, "rolled": state["rolled"] + 1}
    return state


Cup: Final = ResourceType("cup", cup, initial={"hands": {}, "rolled": 0}, private="sealed")
