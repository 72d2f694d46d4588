"""One resource as every peer holds it (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ids import Rid, Term
from .history import head as head_of
from .messages import Era, Head, Held, Position, Sealed, Snapshot
from .state import checksum, freeze

if TYPE_CHECKING:
    from .types import Action, ResourceType

__all__ = ["MAX_ERAS", "WINDOW", "Replica", "replay"]

MAX_ERAS = 64
"""Master changes remembered per resource (enough to tell which own actions a split lost)."""

WINDOW = 8192
"""Seqs per author below its last applied one that a replica remembers exactly (held or not): an
author can tell which of its last ``WINDOW`` confirmed actions a new master's log lacks (1 KiB per
author in a snapshot)."""
_WINDOW_MASK = (1 << WINDOW) - 1
_WINDOW_BYTES = WINDOW // 8


@dataclass(slots=True)
class Replica:
    """Public state of ``rid`` at ``version`` plus subscribers, held private refs and applied seqs."""

    rid: Rid
    type: ResourceType
    state: Any
    version: int = 0
    entry_term: Term = 0  # type: ignore[assignment]
    subscribers: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: list[Held] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)
    eras: list[Era] = field(default_factory=list)
    seal: Sealed | None = None
    """The master's seal over this replica's current head (None until one arrives for this version)."""
    recent: dict[str, int] = field(default_factory=dict)
    """Per author, bit k set: seq ``applied[author] - k`` is in this replica's log (applied, not
    skipped nor rejected). Two masters of a split may both apply one action; its author can
    then tell, after the heal, whether the winning log holds it (see :meth:`holds`)."""
    incarnation: bytes = b""
    """Unique to this creation of ``rid`` (see ``Created``): what its authors' signatures bind to."""
    _checksum: bytes | None = None

    def settle(self, author: str, seq: int, *, applied: bool) -> None:
        """``author``'s action ``seq`` was settled in this log: ``applied``, or rejected (or skipped)."""
        last = self.applied.get(author, 0)
        if seq <= last:
            if applied and last - seq < WINDOW:
                self.recent[author] = self.recent.get(author, 0) | (1 << (last - seq))
            return
        mask = self.recent.get(author, 0) << (seq - last)
        self.recent[author] = (mask | 1 if applied else mask) & _WINDOW_MASK
        self.applied[author] = seq

    def holds(self, author: str, seq: int) -> bool | None:
        """Is ``author``'s action ``seq`` in this log? None when it is too old to tell."""
        last = self.applied.get(author, 0)
        if seq > last:
            return False
        if last - seq >= WINDOW:
            return None
        return bool((self.recent.get(author, 0) >> (last - seq)) & 1)

    @property
    def checksum(self) -> bytes:
        """Checksum of the stored (untransformed) public state."""
        if self._checksum is None:
            self._checksum = checksum(self.state)
        return self._checksum

    def write(self, state: Any, term: Term, version: int, digest: bytes | None = None) -> None:
        """The master of ``term`` wrote ``version``: ``state`` (frozen), checksum ``digest`` (None: computed on use)."""
        self.state = state
        self._checksum = digest
        self.version = version
        self.entry_term = term
        self.seal = None
        if not self.eras or self.eras[-1].term != term:
            self.eras.append(Era(term=term, since=version))
            del self.eras[:-MAX_ERAS]

    def advance(self, term: Term, version: int) -> None:
        """The master of ``term`` wrote ``version`` with the state unchanged."""
        self.write(self.state, term, version, self._checksum)

    def term_at(self, version: int) -> int | None:
        """The term whose master wrote ``version``, or None if that is older than the kept eras."""
        if version > self.version:
            return None
        found: int | None = None
        for era in self.eras:
            if era.since > version:
                break
            found = era.term
        return found

    def copy(self) -> Replica:
        """An independent copy (the containers are copied; states are frozen and shared)."""
        return Replica(
            rid=self.rid,
            type=self.type,
            state=self.state,
            version=self.version,
            entry_term=self.entry_term,
            subscribers={k: dict(v) for k, v in self.subscribers.items()},
            held=list(self.held),
            applied=dict(self.applied),
            eras=list(self.eras),
            seal=self.seal,
            recent=dict(self.recent),
            incarnation=self.incarnation,
            _checksum=self._checksum,
        )

    @property
    def key(self) -> tuple[int, int]:
        """What "newer" means between replicas: (entry term, version)."""
        return (self.entry_term, self.version)

    def head(self) -> Head:
        """This replica's head, as a seal signs it."""
        return head_of(self.rid, self.version, self.checksum, self.applied, self.held, self.incarnation)

    def position(self) -> Position:
        """This replica's position, as a new master is told."""
        return Position(term=self.entry_term, version=self.version, checksum=self.checksum)

    def snapshot(self, *, term: Term, index: int) -> Snapshot:
        """A snapshot message of this replica (held private actions by reference only)."""
        return Snapshot(
            term=term,
            index=index,
            rid=self.rid,
            entry_term=self.entry_term,
            version=self.version,
            state=self.state,
            checksum=self.checksum,
            subscribers=dict(self.subscribers),
            held=tuple(
                Held(author=h.author, seq=h.seq, commitment=h.commitment, public=h.public, beacon=h.beacon)
                for h in self.held
            ),
            applied=dict(self.applied),
            eras=tuple(self.eras),
            seal=self.seal,
            # as few bytes as each mask needs (up to 1 KiB): an author with a few actions costs a few
            recent={author: mask.to_bytes((mask.bit_length() + 7) // 8, "big") for author, mask in self.recent.items()},
            incarnation=self.incarnation,
        )

    @classmethod
    def from_snapshot(cls, snap: Snapshot, type: ResourceType) -> Replica:
        """Build a replica from a (validated) snapshot."""
        return cls(
            rid=snap.rid,
            type=type,
            state=freeze(snap.state),
            version=snap.version,
            entry_term=snap.entry_term,
            subscribers={k: dict(v) for k, v in snap.subscribers.items()},
            held=[
                Held(author=h.author, seq=h.seq, commitment=h.commitment, public=h.public, beacon=h.beacon)
                for h in snap.held
            ],
            applied=dict(snap.applied),
            eras=list(snap.eras[-MAX_ERAS:]),
            seal=snap.seal,
            recent={author: int.from_bytes(mask[-_WINDOW_BYTES:], "big") for author, mask in snap.recent.items()},
            incarnation=snap.incarnation,
        )


def replay(type: ResourceType, state: Any, actions: list[Action]) -> Any:
    """Apply ``actions`` in order with the type's reducer (held to its contract, each result frozen)."""
    for action in actions:
        state = type.reduce(state, action)
    return state
