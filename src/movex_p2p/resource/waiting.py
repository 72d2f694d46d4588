"""Waiting: what a master cannot serve yet, in arrival order, and when the next slice of it is due (pure)."""

from __future__ import annotations

from collections import deque
from typing import Final

from ..errors import RemoteProtocolError
from ..ids import PeerId
from .messages import ToMaster

__all__ = ["MAX_WAITING", "RELEASE_SLICE", "Waiting"]

MAX_WAITING: Final = 65_536
"""Messages kept while the master cannot serve yet; beyond that they are refused (their senders re-send)."""

RELEASE_SLICE: Final = 128
"""Waiting messages served in one step once the master can serve them all; the rest are served in the
next steps, due at once (:attr:`Waiting.due`), and whatever arrives meanwhile waits behind them. A
new master that ends its recovery with every survivor's burst waiting (1,200 actions at 12 peers)
would otherwise serve them in one step, and on a starved CPU its node sends no heartbeat for that
long: its peers declare it dead. Between two slices the node's loop runs its transport."""


class Waiting:
    """One queue, in arrival order: what waits for the end of recovery or for the lease."""

    def __init__(self) -> None:
        self.queue: deque[tuple[PeerId, ToMaster]] = deque()
        self.for_lease = False
        """True when something waits that a lease (and no end of recovery) would let through."""
        self.due: float | None = None
        """When the next slice is due (more waits that can all be served), or None."""

    def __len__(self) -> int:
        return len(self.queue)

    def push(self, sender: PeerId, message: ToMaster, *, lease: bool) -> None:
        """Queue ``message`` behind what waits (``lease``: whether the master held one when it came)."""
        if len(self.queue) >= MAX_WAITING:
            raise RemoteProtocolError(f"the master's queue is full ({MAX_WAITING} messages wait)")
        self.queue.append((sender, message))
        self.for_lease = self.for_lease or not lease

    def take(self, now: float, *, servable: bool) -> list[tuple[PeerId, ToMaster]]:
        """What to serve now, oldest first: all of it, or (``servable``: none of it can wait again) one
        slice, the rest due at ``now``."""
        self.for_lease, self.due = False, None
        if servable and len(self.queue) > RELEASE_SLICE:
            self.due = now
            return [self.queue.popleft() for _ in range(RELEASE_SLICE)]
        taken, self.queue = list(self.queue), deque()
        return taken

    def lease_lost(self) -> None:
        """No lease now: the slices still due wait for it (none is due meanwhile)."""
        if self.due is not None:
            self.due, self.for_lease = None, True
