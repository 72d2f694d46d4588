"""A master's pulls: which replica it asked which peer for, and whether what came back may be adopted (pure).

A new master pulls every replica a peer reports newer than its own (and, later, any resource it
does not hold at all). A pulled replica is adopted only if it is the one its peer reported, whole,
and sealed by the master of its term: a peer cannot make a master adopt a history nobody sealed.
Messages for a resource still on its way wait for it here (bounded), not fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..errors import RemoteProtocolError
from ..ids import PeerId, Rid, Term
from ..signing import Verifier
from .history import meta_digest, seal_signer
from .messages import Position, Pull, Snapshot, ToMaster
from .replica import Replica

__all__ = ["MAX_PARKED", "MAX_PULLS", "Pulls"]

MAX_PULLS: Final = 4096
"""Pulls (and reported positions) a recovering master keeps track of at once."""
MAX_PARKED: Final = 65_536
"""Messages kept for resources still being pulled; beyond that they are refused (their senders re-send)."""


class Pulls:
    """The pulls a master sent and not yet got answered, and what waits for them."""

    def __init__(
        self, me: PeerId, term: Term, *, verifier: Verifier, master_of: Callable[[Term], PeerId | None]
    ) -> None:
        self._me, self._term = me, term
        self._verifier, self._master_of = verifier, master_of
        self.inflight: set[tuple[PeerId, Rid]] = set()
        """Every Pull sent and not yet answered: (peer, rid)."""
        self.awaiting: dict[Rid, set[PeerId]] = {}
        """Recovery: the peers each resource's pull still waits for."""
        self.adopted: set[Rid] = set()
        """Recovery: replicas pulled and adopted (published when it ends)."""
        self._reported: dict[tuple[PeerId, Rid], Position] = {}  # what each peer reported it holds
        self._parked: dict[Rid, list[tuple[PeerId, ToMaster]]] = {}
        self._parked_count = 0

    def ask(self, peer: PeerId, rid: Rid, reported: Position) -> Pull | None:
        """Pull ``rid`` from ``peer``, which reported it at ``reported``; None if too many pulls are in flight."""
        if len(self.inflight) >= MAX_PULLS:
            return None
        self.awaiting.setdefault(rid, set()).add(peer)
        self.inflight.add((peer, rid))
        self._reported[(peer, rid)] = reported
        return Pull(term=self._term, rid=rid)

    def answered(self, peer: PeerId, rid: Rid) -> tuple[bool, Position | None]:
        """A pulled replica of ``rid`` came from ``peer``: (was it asked for, the position ``peer`` reported)."""
        if (peer, rid) not in self.inflight:
            return False, None  # a snapshot we did not ask this peer for: never adopted
        self.inflight.discard((peer, rid))
        reported = self._reported.pop((peer, rid), None)
        waiting = self.awaiting.get(rid)
        if waiting is not None:
            waiting.discard(peer)
            if not waiting:
                del self.awaiting[rid]
        return True, reported

    def pulling(self, rid: Rid) -> bool:
        """Is a pull of ``rid`` in flight?"""
        return any(r == rid for _, r in self.inflight)

    def peers_gone(self, gone: Callable[[PeerId], bool]) -> list[Rid]:
        """Forget the pulls of departed peers (their answers are not coming); the rids they were pulling."""
        for rid, waiting in list(self.awaiting.items()):
            waiting.difference_update({p for p in waiting if gone(p)})
            if not waiting:
                del self.awaiting[rid]
        unanswered = {(p, rid) for p, rid in self.inflight if gone(p)}
        self.inflight -= unanswered
        for peer, rid in unanswered:
            self._reported.pop((peer, rid), None)
        return [rid for _, rid in sorted(unanswered)]

    def forget(self, rid: Rid) -> None:
        """``rid`` was removed: its pulls are of no use any more."""
        self.awaiting.pop(rid, None)
        self.inflight = {(peer, r) for peer, r in self.inflight if r != rid}

    def park(self, rid: Rid, sender: PeerId, message: ToMaster) -> None:
        """Keep ``message`` until the pull of ``rid`` is answered."""
        if self._parked_count >= MAX_PARKED:
            raise RemoteProtocolError(f"the master's queue is full ({MAX_PARKED} messages wait)")
        self._parked.setdefault(rid, []).append((sender, message))
        self._parked_count += 1

    def unpark(self, rid: Rid) -> list[tuple[PeerId, ToMaster]]:
        """What waited for ``rid``, once no pull of it is in flight any more ([] while one is)."""
        if self.pulling(rid):
            return []
        parked = self._parked.pop(rid, [])
        self._parked_count -= len(parked)
        return parked

    def refusal(self, snap: Snapshot, pulled: Replica, reported: Position | None) -> str | None:
        """Why the pulled replica is not adopted (not the one reported, not whole, or not sealed), or None."""
        if reported is None or (reported.term, reported.version, reported.checksum) != (
            snap.entry_term,
            snap.version,
            snap.checksum,
        ):
            return "not at the position its peer reported"
        if pulled.checksum != snap.checksum:
            return "its state does not have its checksum"
        seal = snap.seal
        signed_by = None if seal is None or seal.term != snap.entry_term else seal_signer(seal, self._verifier)
        known = self._me if snap.entry_term == self._term else self._master_of(snap.entry_term)
        if seal is None or signed_by is None or signed_by != known:
            return "not sealed by the master of its term"
        meta = meta_digest(pulled.applied, pulled.held, pulled.incarnation)
        if not any(
            h.rid == snap.rid and h.version == snap.version and h.checksum == snap.checksum and h.meta == meta
            for h in seal.heads
        ):
            return "not the head its seal signs"
        return None
