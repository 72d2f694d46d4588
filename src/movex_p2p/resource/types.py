"""Actions, resource types and resource ids (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LocalProtocolError
from ..ids import Rid

__all__ = ["Action", "Reducer", "ResourceType", "TransformContext", "make_rid", "parse_rid"]


@dataclass(frozen=True, slots=True)
class Action:
    """A named change with an optional payload; pattern-match it as ``Action("type", payload)``."""

    type: str
    payload: Any = None

    __match_args__ = ("type", "payload")

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise TypeError("Action.type must be a non-empty str")

    def __hash__(self) -> int:
        try:
            return hash((self.type, self.payload))
        except TypeError:  # dict / list payloads: hash by type only, equality stays exact
            return hash(self.type)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformContext:
    """What a transform sees besides the state: ``now`` is the master's clock (seconds)."""

    now: float


Reducer = Callable[[Any, Action], Any]


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A kind of resource: its name, pure reducer, initial state and optional hooks.

    ``can_reveal(public_state)`` says when held private actions are revealed to everyone;
    ``transform(state, ctx)`` is a pure view applied on read (never stored, never checksummed).
    """

    name: str
    reducer: Reducer
    initial: Any = None
    can_reveal: Callable[[Any], bool] | None = field(default=None, kw_only=True)
    transform: Callable[[Any, TransformContext], Any] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name:
            raise ValueError(f"resource type name must be a non-empty str without ':', not {self.name!r}")
        if not callable(self.reducer):
            raise TypeError("reducer must be callable")

    def rid(self, id: str) -> Rid:
        """The rid of the resource ``id`` of this type."""
        return make_rid(self.name, id)


def make_rid(type_name: str, id: str) -> Rid:
    """Build ``"type:id"``; both parts must be non-empty and the type has no colon."""
    if not type_name or ":" in type_name:
        raise LocalProtocolError(f"invalid resource type {type_name!r}")
    if not isinstance(id, str) or not id:
        raise LocalProtocolError(f"invalid resource id {id!r}")
    return Rid(f"{type_name}:{id}")


def parse_rid(rid: str) -> tuple[str, str]:
    """Split ``"type:id"`` at the first colon; both parts must be non-empty."""
    if not isinstance(rid, str):
        raise LocalProtocolError(f"a rid must be a str, not {type(rid).__name__}")
    type_name, sep, id = rid.partition(":")
    if not sep or not type_name or not id:
        raise LocalProtocolError(f"invalid rid {rid!r}: expected 'type:id'")
    return type_name, id
