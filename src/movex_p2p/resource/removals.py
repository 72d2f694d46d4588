"""Removals: a client's tombstones and the removals that wait for a seal to record them (pure).

A replica is dropped only once a seal of its master records the removal (a head with
``REMOVED_VERSION``): the ``Sealed`` after the ``Removed``, or the seal a ``Removed`` told again
carries. So a removal is part of the witnessed history, and a master that tells one peer
only cannot make it drop a replica without signing a history the others' seals contradict.
Each tombstone keeps the index of the removal, the seal that recorded it (a new master tells a
peer that missed it) and the removed replica's incarnation (a rid created again with it would
let old signatures fit: a forgery).
"""

from __future__ import annotations

from typing import Final

from ..ids import Rid
from .history import REMOVED_VERSION
from .messages import Removed, Sealed

__all__ = ["TOMBSTONES", "Removals", "records_removal"]

TOMBSTONES: Final = 4096
"""Removed rids remembered (a new master refuses to bring them back from a late report)."""


class Removals:
    """Tombstones (rid -> index, seal, incarnation) and the removals no seal recorded yet."""

    def __init__(self) -> None:
        self.removed: dict[Rid, int] = {}
        """Recently removed rids and the log index of their removal."""
        self.seals: dict[Rid, Sealed] = {}
        """The seal that recorded each tombstone's removal, when this peer got it."""
        self._incarnations: dict[Rid, bytes] = {}
        self._unsealed: dict[Rid, int] = {}  # rid -> index of a Removed no seal recorded yet

    def told(self, msg: Removed, held: bool) -> tuple[bool, Sealed | None]:
        """A ``Removed`` (``held``: a replica of it is here): (remove now?, the seal that records it)."""
        recorded = records_removal(msg.seal, msg.rid, msg.index)
        if held and not recorded:
            self._unsealed[msg.rid] = msg.index  # waits for a seal
            return False, None
        return True, msg.seal if recorded else None

    def recorded(self, sealed: Sealed) -> list[tuple[Rid, int]]:
        """The waiting removals ``sealed`` records: (rid, index) of each."""
        out = []
        for head in sealed.heads:
            index = self._unsealed.get(head.rid)
            if head.version == REMOVED_VERSION and index is not None and sealed.prev < index <= sealed.index:
                out.append((head.rid, index))
        return out

    def tombstone(self, rid: Rid, index: int, sealed: Sealed | None, incarnation: bytes | None) -> None:
        """``rid`` is removed at ``index`` (``incarnation``: of the replica dropped, if one was here)."""
        self._unsealed.pop(rid, None)
        self.removed[rid] = index
        if sealed is not None:
            self.seals[rid] = sealed
        while len(self.removed) > TOMBSTONES:
            gone = next(iter(self.removed))
            del self.removed[gone]
            self.seals.pop(gone, None)
        if incarnation is not None:
            self._incarnations[rid] = incarnation
            while len(self._incarnations) > TOMBSTONES:
                del self._incarnations[next(iter(self._incarnations))]

    def replayed(self, rid: Rid, incarnation: bytes) -> str | None:
        """Why creating ``rid`` with ``incarnation`` is a forgery (the incarnation of one removed), or None."""
        if self._incarnations.get(rid) != incarnation:
            return None
        return f"{rid} created again with the incarnation of the one removed (a replay)"

    def forget(self, rid: Rid | None = None) -> None:
        """A snapshot of ``rid`` came (or, without ``rid``, a new master): what waited for a seal no longer does."""
        if rid is None:
            self._unsealed.clear()
        else:
            self._unsealed.pop(rid, None)


def records_removal(sealed: Sealed | None, rid: Rid, index: int) -> bool:
    """Does ``sealed`` record the removal of ``rid`` at log ``index``?"""
    return (
        sealed is not None
        and sealed.prev < index <= sealed.index
        and any(h.rid == rid and h.version == REMOVED_VERSION for h in sealed.heads)
    )
