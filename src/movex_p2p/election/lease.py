"""A master's heartbeats and the acks they got: its lease and its followers' positions (pure)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Final

from ..ids import PeerId

__all__ = ["SENT_KEPT", "Beats"]

SENT_KEPT: Final = 64
"""Heartbeat send times remembered for matching acks."""


class Beats:
    """Heartbeat sequence numbers, when each was sent, and what each follower acked and holds."""

    def __init__(self) -> None:
        self.seq = 0
        self._sent: dict[int, float] = {}
        self._acked: dict[PeerId, float] = {}  # send time of the latest heartbeat each peer acked
        self._positions: dict[PeerId, tuple[int, int]] = {}

    def reset(self) -> None:
        """A new term (or none): no heartbeat sent, none acked (positions stay: they rank successors)."""
        self.seq = 0
        self._sent.clear()
        self._acked.clear()

    def beat(self, now: float) -> int:
        """Number the heartbeat sent at ``now``."""
        self.seq += 1
        self._sent[self.seq] = now
        self._sent.pop(self.seq - SENT_KEPT, None)
        return self.seq

    def acked(self, peer: PeerId, seq: int, position: tuple[int, int]) -> None:
        """``peer`` acked heartbeat ``seq`` and holds the log up to ``position``."""
        self._positions[peer] = position
        sent = self._sent.get(seq)
        if sent is not None and sent > self._acked.get(peer, -math.inf):
            self._acked[peer] = sent

    def forget(self, peer: PeerId) -> None:
        """``peer`` left (gracefully, or the membership forgot it)."""
        self._positions.pop(peer, None)
        self._acked.pop(peer, None)

    def keep_only(self, known: Collection[PeerId]) -> None:
        """Forget every peer not in ``known`` (tables keyed by senders stay bounded)."""
        for table in (self._positions, self._acked):
            for peer in [p for p in table if p not in known]:
                del table[peer]

    def lease_until(self, voters: Collection[PeerId], lease: float) -> float:
        """Until when a quorum of ``voters`` (self included, not listed among the acks) backs us."""
        need = len(voters) // 2  # acks needed besides our own
        if need == 0:
            return math.inf
        times = sorted((t for p, t in self._acked.items() if p in voters), reverse=True)
        return times[need - 1] + lease if len(times) >= need else -math.inf

    def ranked(self, peers: Iterable[PeerId]) -> tuple[PeerId, ...]:
        """``peers`` best first: the most caught up, then by id (the successors a heartbeat lists)."""

        def key(peer: PeerId) -> tuple[int, int, PeerId]:
            last_term, last_index = self._positions.get(peer, (0, 0))
            return (-last_term, -last_index, peer)

        return tuple(sorted(peers, key=key))
