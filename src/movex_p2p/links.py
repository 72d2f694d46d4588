"""One model of the links between peers, shared by every in-process network (pure: the rng is injected).

``FaultyNetwork`` (real time), the node :class:`~movex_p2p.simulation.Simulation` and the
election harness :class:`~movex_p2p.election.sim.Cluster` (virtual time) all ask it whether two
peers can talk and when a frame sent now arrives, so kills, partitions, delay and loss mean the
same thing everywhere. A frame travels on one of two lanes (:class:`~movex_p2p.routes.Lane`):

- **reliable**: in order per direction, never lost while the link is up. A frame sent over a
  cut link is lost, and the drivers also drop frames still in flight when a cut happens: a
  reliable channel either delivers or breaks, so that is the only loss on this lane. With
  ``retransmit`` the lane's loss costs time as it does on SCTP: a frame lost (probability
  ``loss``) arrives one retransmission timeout later (20-300 ms, doubling while lost again), and
  every frame behind it waits (head-of-line blocking).
- **datagram**: each frame is lost with probability ``loss`` (per direction if set so) and
  delayed on its own draw, so datagrams overtake one another whenever the delay varies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .ids import PeerId
from .routes import Lane

if TYPE_CHECKING:
    import random

__all__ = ["Links"]


class Links:
    """Who can talk to whom, and when a frame sent now arrives (see the module docstring)."""

    def __init__(
        self,
        rng: random.Random,
        *,
        delay: tuple[float, float] = (0.0, 0.0),
        loss: float = 0.0,
        retransmit: bool = False,
    ) -> None:
        self.rng = rng
        self.retransmit = retransmit
        self.delay = (0.0, 0.0)
        self.loss = 0.0
        self._loss_on: dict[tuple[PeerId, PeerId], float] = {}
        self._side: dict[PeerId, int] = {}  # side of the current partition; unlisted peers share side 0
        self._dead: set[PeerId] = set()
        self._last: dict[tuple[PeerId, PeerId], float] = {}  # reliable lane: last arrival per direction
        self.set_delay(*delay)
        self.set_loss(loss)

    # -- conditions ------------------------------------------------------------------------------

    def set_delay(self, low: float, high: float | None = None) -> None:
        """Delay every frame by a uniform draw from ``[low, high]`` seconds (``high`` None: exactly ``low``)."""
        high = low if high is None else high
        if not 0.0 <= low <= high:
            raise ValueError("delay must satisfy 0 <= low <= high")
        self.delay = (low, high)

    def set_loss(self, p: float, *, link: tuple[str, str] | None = None) -> None:
        """Lose each datagram with probability ``p``: on every link, or only from ``link[0]`` to ``link[1]``."""
        if not 0.0 <= p <= 1.0:
            raise ValueError("loss must be within [0, 1]")
        if link is None:
            self.loss = p
        else:
            self._loss_on[(PeerId(link[0]), PeerId(link[1]))] = p

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between different groups (peers in no group form one more group)."""
        self._side = {PeerId(peer): side for side, group in enumerate(groups, start=1) for peer in group}

    def heal(self) -> None:
        """Undo every partition."""
        self._side = {}

    def kill(self, peer: str) -> None:
        """``peer`` is gone: every link to it is cut."""
        self._dead.add(PeerId(peer))

    def revive(self, peer: str) -> None:
        """``peer`` is back (a new process with the same id)."""
        self._dead.discard(PeerId(peer))

    # -- questions -------------------------------------------------------------------------------

    @property
    def partitioned(self) -> bool:
        """True while a partition is in force."""
        return bool(self._side)

    def linked(self, a: str, b: str) -> bool:
        """Can ``a`` and ``b`` talk now (both alive, same side of the partition)?"""
        return (
            a != b
            and a not in self._dead
            and b not in self._dead
            and self._side.get(PeerId(a), 0) == self._side.get(PeerId(b), 0)
        )

    def arrival(self, src: PeerId, dst: PeerId, now: float, lane: Lane) -> float | None:
        """When a frame ``src`` sends ``dst`` at ``now`` on ``lane`` arrives, or None if it is lost."""
        if not self.linked(src, dst):
            return None
        low, high = self.delay
        at = now + (low if low == high else self.rng.uniform(low, high))
        if lane is Lane.DATAGRAM:
            loss = self._loss_on.get((src, dst), self.loss)
            if loss and self.rng.random() < loss:
                return None
            return at
        if self.retransmit:
            loss = self._loss_on.get((src, dst), self.loss)
            rto = self.rng.uniform(0.02, 0.3)
            while loss and self.rng.random() < loss and rto < 8.0:
                at += rto
                rto *= 2
        key = (src, dst)
        last = self._last.get(key)
        if last is not None and last > at:
            at = last
        self._last[key] = at
        return at
