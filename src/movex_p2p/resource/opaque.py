"""Opaque replicas: stand-in types for resources this peer cannot reduce, and their snapshot refresh (pure)."""

from __future__ import annotations

from typing import Any

from ..errors import LocalProtocolError
from ..ids import PeerId, Rid, Term
from .effects import Effect, Send
from .messages import SyncRequest
from .types import Action, ResourceType, parse_rid

__all__ = ["OPAQUE_REFRESH", "OpaqueRefresh", "is_opaque", "opaque_type", "type_of"]

OPAQUE_REFRESH = 0.25
"""Seconds between two snapshots of one opaque replica (see :func:`opaque_type`)."""


def _opaque_reducer(state: Any, action: Action) -> Any:
    raise LocalProtocolError("an opaque resource type has no reducer: this peer only reads its snapshots")


def opaque_type(name: str) -> ResourceType:
    """A stand-in for a type this peer does not have (``ClientCore(opaque=True)``, spectators only).

    Its replicas take the master's snapshots as they are and never run a reducer: an entry
    marks the replica stale, and a fresh snapshot is asked for, at most every OPAQUE_REFRESH s.
    """
    return ResourceType(name, _opaque_reducer, version="opaque")


def is_opaque(type_: ResourceType) -> bool:
    """True for a stand-in made by :func:`opaque_type`."""
    return type_.reducer is _opaque_reducer


def type_of(types: dict[str, ResourceType], rid: Rid, *, opaque: bool) -> ResourceType | None:
    """The type of ``rid`` in ``types``: ours, an opaque stand-in (added with ``opaque``), or None (not replicated)."""
    type_name, _ = parse_rid(rid)
    type_ = types.get(type_name)
    if type_ is None and opaque:
        type_ = types[type_name] = opaque_type(type_name)
    return type_


class OpaqueRefresh:
    """Opaque replicas behind the master, refreshed by snapshot at most once per OPAQUE_REFRESH each."""

    def __init__(self) -> None:
        self.stale: dict[Rid, None] = {}  # opaque replicas behind the master
        self.fetched_at: dict[Rid, float] = {}  # when each opaque replica's last snapshot was asked for

    def forget(self, rid: Rid) -> None:
        """``rid`` was removed."""
        self.stale.pop(rid, None)
        self.fetched_at.pop(rid, None)

    def refresh(self, now: float, master: PeerId | None, term: Term, syncing: set[Rid]) -> list[Effect]:
        """Ask for snapshots of stale opaque replicas: one in flight each (``syncing``), one per OPAQUE_REFRESH."""
        if master is None:
            return []
        effects: list[Effect] = []
        for rid in self.stale:
            if rid not in syncing and now - self.fetched_at.get(rid, -OPAQUE_REFRESH) >= OPAQUE_REFRESH:
                syncing.add(rid)
                self.fetched_at[rid] = now
                effects.append(Send(to=master, message=SyncRequest(term=term, rid=rid)))
        return effects

    def waits(self, syncing: set[Rid]) -> list[float]:
        """When each stale replica not being synced may be asked for again."""
        return [self.fetched_at.get(r, 0.0) + OPAQUE_REFRESH for r in self.stale if r not in syncing]
