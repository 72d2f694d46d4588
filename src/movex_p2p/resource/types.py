"""Actions, resource types and resource ids (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import LocalProtocolError
from ..ids import Rid

__all__ = ["DEFAULT_MAX_BYTES", "Action", "Reducer", "ResourceType", "TransformContext", "make_rid", "parse_rid"]


@dataclass(frozen=True, slots=True)
class Action:
    """A named change with an optional payload; pattern-match it as ``Action("type", payload)``.

    ``author`` is the id of the peer that dispatched it, set by the library on every peer (the
    author's own optimistic view included) from the authenticated link it came over; it is
    never part of the payload, never sent, not part of equality, and None for an Action you built.
    """

    type: str
    payload: Any = None
    author: str | None = field(default=None, init=False, compare=False, repr=False, metadata={"wire": False})

    __match_args__ = ("type", "payload")

    def by(self, author: str) -> Action:
        """This action as dispatched by ``author`` (the library's use: reducers see it as ``action.author``)."""
        if self.author == author:
            return self
        authored = Action(self.type, self.payload)
        object.__setattr__(authored, "author", author)
        return authored

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

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
"""The default ``ResourceType.max_bytes``: 64 MiB."""


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A kind of resource: its name, pure reducer, initial state and optional hooks.

    ``can_reveal(public_state)`` says when held private actions are revealed to everyone;
    ``transform(state, ctx)`` is a pure view applied on read (never stored, never checksummed);
    ``max_bytes`` bounds a state (and an action) of this type, counted as its CBOR encoding:
    anything up to it syncs, however many such resources a room holds.
    """

    name: str
    reducer: Reducer
    initial: Any = None
    can_reveal: Callable[[Any], bool] | None = field(default=None, kw_only=True)
    transform: Callable[[Any, TransformContext], Any] | None = field(default=None, kw_only=True)
    max_bytes: int = field(default=DEFAULT_MAX_BYTES, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or ":" in self.name:
            raise ValueError(f"resource type name must be a non-empty str without ':', not {self.name!r}")
        if not callable(self.reducer):
            raise TypeError("reducer must be callable")
        if type(self.max_bytes) is not int or self.max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, not {self.max_bytes!r}")

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
