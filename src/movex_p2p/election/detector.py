"""Heartbeat failure detector: pure, time is an argument."""

from __future__ import annotations

from typing import Final

from ..ids import PeerId

__all__ = ["LAG_AFTER", "CatchUp", "FailureDetector"]

LAG_AFTER: Final = 1.0
"""Seconds a follower may stay behind the log index a master's heartbeat named before it reports again."""


class CatchUp:
    """Whether a follower keeps up with its master's log: entries take milliseconds to arrive, so a
    replica still short of an index the master had :data:`LAG_AFTER` ago missed some."""

    def __init__(self) -> None:
        self._target: tuple[float, int] | None = None  # (when, index): the master's log reached index

    def reached(self, index: int) -> None:
        """The replica now holds up to ``index``."""
        if self._target is not None and index >= self._target[1]:
            self._target = None

    def lagging(self, master_index: int, mine: int, now: float) -> bool:
        """A heartbeat says the master's log is at ``master_index``, ours at ``mine``: True to report lagging."""
        if self._target is None:
            if master_index > mine:
                self._target = (now, master_index)
        elif mine >= self._target[1]:
            self._target = (now, master_index) if master_index > mine else None
        elif now - self._target[0] >= LAG_AFTER:
            self._target = None
            return True
        return False


PATIENCE: Final = 2.0
"""A peer is suspected after ``timeout``, or after this many times the longest silence it kept lately,
if longer (at most :data:`MAX_STRETCH` times ``timeout``): a peer starved of CPU (12 processes on 2
vCPUs, a new master serving every survivor's burst) goes quiet longer and longer before it would be
declared dead, and its links, costly to open again, stay up; a peer that was regular until it died
is declared dead as fast as ever."""

MAX_STRETCH: Final = 3.0
"""The longest a peer's timeout grows, in multiples of ``timeout``."""

HALF_LIFE: Final = 5.0
"""Seconds over which a long silence counts half as much."""


class FailureDetector:
    """Suspects a peer once nothing was heard from it for ``timeout`` seconds (longer for a peer that
    kept long silences lately: :data:`PATIENCE`)."""

    def __init__(self, *, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self._last: dict[PeerId, float] = {}
        self._limit: dict[PeerId, tuple[float, float]] = {}  # (silence allowed, when it was set)

    def heard(self, peer: PeerId, now: float) -> None:
        """Record that something arrived from ``peer`` at ``now``."""
        last = self._last.get(peer)
        self._last[peer] = now
        if last is None:
            return
        wanted = min(self.timeout * MAX_STRETCH, PATIENCE * (now - last))
        stored = self._limit.get(peer)
        if stored is None:  # the common case, on every frame: a regular peer, no stretch to fade
            if wanted > self.timeout:
                self._limit[peer] = (wanted, now)
            return
        limit, since = stored
        stretched = self.timeout + (limit - self.timeout) * 0.5 ** ((now - since) / HALF_LIFE)
        self._limit[peer] = (max(wanted, stretched), now)

    def limit(self, peer: PeerId) -> float:
        """The silence after which ``peer`` is suspected now."""
        return self._limit.get(peer, (self.timeout, 0.0))[0]

    def stalled(self, seconds: float) -> None:
        """This process was stalled ``seconds``: what peers sent meanwhile may wait unread, so give them that long."""
        for peer in self._last:
            self._last[peer] += seconds

    def forget(self, peer: PeerId) -> None:
        """Stop watching ``peer`` (it left, or was already declared dead)."""
        self._last.pop(peer, None)
        self._limit.pop(peer, None)

    @property
    def watched(self) -> frozenset[PeerId]:
        """Peers being watched."""
        return frozenset(self._last)

    def expired(self, now: float) -> list[tuple[PeerId, float]]:
        """Peers silent for longer than their limit, with that limit; they are forgotten as they are returned."""
        dead = [(peer, self.limit(peer)) for peer, last in self._last.items() if now - last > self.limit(peer)]
        for peer, _ in dead:
            self.forget(peer)
        return dead

    @property
    def deadline(self) -> float | None:
        """When the next peer would expire if nothing more is heard, or None."""
        if not self._last:
            return None
        return min(last + self.limit(peer) for peer, last in self._last.items())
