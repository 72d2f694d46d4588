"""One virtual-time world for every in-memory harness: a timeline, deadline sources, the links (pure).

The node :class:`~movex_p2p.simulation.Simulation` and the election
:class:`~movex_p2p.election.sim.Cluster` are adapters over :class:`World`: each says what an item
on the timeline does, which cores have timers and how to tick one, and the world lets time pass.
``FaultyNetwork`` (real time) holds its delayed frames on the same :class:`Timeline`. Items due at
one time come out in the order they were put in, so a seed replays the same schedule.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final, Generic, Self, TypeVar

if TYPE_CHECKING:
    from .links import Links

__all__ = ["MAX_STEPS_PER_INSTANT", "Timeline", "World"]

T = TypeVar("T")
K = TypeVar("K")

MAX_STEPS_PER_INSTANT: Final = 100_000
"""More steps than this at one virtual time mean a deadline is not advancing: the run fails."""


class Timeline(Generic[T]):
    """Items due at a time, taken out by (time, insertion order)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[T]:
        """Every item, in no particular order."""
        return (item for _, _, item in self._heap)

    @property
    def next_at(self) -> float | None:
        """When the first item is due (None when there is none)."""
        return self._heap[0][0] if self._heap else None

    def at(self, when: float, item: T) -> None:
        """Put ``item`` due at ``when``, after every item already due then."""
        heapq.heappush(self._heap, (when, next(self._order), item))

    def pop(self) -> T:
        """Take out the first item."""
        return heapq.heappop(self._heap)[2]

    def remove(self, predicate: Callable[[T], bool]) -> list[T]:
        """Take out every item ``predicate`` holds for (the others keep their order); return them."""
        gone = [item for _, _, item in self._heap if predicate(item)]
        if gone:
            self._heap = [entry for entry in self._heap if not predicate(entry[2])]
            heapq.heapify(self._heap)
        return gone


class World(ABC, Generic[T, K]):
    """Virtual time: items on a timeline, cores' deadlines, and the links between peers.

    An adapter says what an item does (:meth:`_handle`), which cores have timers, in the order
    they tick (:meth:`_deadlines`), and how to tick one (:meth:`_tick`). Time jumps to whatever is
    due first, an item before a deadline at the same time; a due deadline ticks every core due.
    ``resolution``: a core due within that many seconds ticks now, and time never steps forward by
    less for a deadline. ``batch``: each jump handles every item due, then ticks every core due,
    before ``until`` is asked again (else one item or one round of ticks per step).
    """

    def __init__(self, links: Links, *, now: float = 0.0, resolution: float = 0.0, batch: bool = False) -> None:
        self.now = now
        self.links = links
        """The link model: who can talk, and when a frame sent now arrives."""
        self.timeline: Timeline[T] = Timeline()
        self._resolution = resolution
        self._batch = batch

    @abstractmethod
    def _handle(self, item: T) -> None:
        """Do what ``item`` (due now) stands for."""

    @abstractmethod
    def _deadlines(self) -> Iterable[tuple[K, float | None]]:
        """Each core with a timer and its deadline, in tick order (read lazily, as ticks go)."""

    @abstractmethod
    def _tick(self, key: K) -> None:
        """Tick the core ``key``: its deadline is due."""

    def _observe(self) -> None:
        """Called after each step (invariant checks)."""

    def run_until(self, end: float, *, until: Callable[[Self], bool] | None = None) -> bool:
        """Process events up to virtual time ``end``; stop early (returning True) once ``until`` holds."""
        steps = 0
        while True:
            if until is not None and until(self):
                return True
            when = self._next_at()
            if when is None or when > end:
                self.now = max(self.now, end)
                return False
            steps = steps + 1 if when <= self.now else 0
            if steps > MAX_STEPS_PER_INSTANT:
                raise RuntimeError(f"no progress at t={self.now}: a deadline is not advancing")
            self.now = max(self.now, when)
            if self._batch:
                while (due := self.timeline.next_at) is not None and due <= self.now:
                    self._handle(self.timeline.pop())
                self._tick_due()
            elif self.timeline.next_at == when:
                self._handle(self.timeline.pop())
            else:
                self._tick_due()
            self._observe()

    def _next_at(self) -> float | None:
        """The next time something is due: the first item or the earliest deadline (the item on a tie)."""
        best = self.timeline.next_at
        for _, deadline in self._deadlines():
            if deadline is None:
                continue
            if self._resolution:
                deadline = max(deadline, self.now + self._resolution)
            if best is None or deadline < best:
                best = deadline
        return best

    def _tick_due(self) -> None:
        horizon = self.now + self._resolution
        for key, deadline in self._deadlines():
            if deadline is not None and deadline <= horizon:
                self._tick(key)
