"""Acks: under ``majority``, how far this replica told its master it holds the log, and when again (pure)."""

from __future__ import annotations

__all__ = ["ACK_AGAIN", "Acks"]

ACK_AGAIN = 0.5
"""Seconds after which an ack the master's commit has not counted yet is sent again."""


class Acks:
    """The last index acked to the current master, and when.

    An ack can be lost (a partition, a link that reset) and a quiet room makes no newer entry to
    ack, so while the master's commit stays below what was acked, the ack goes again every
    ACK_AGAIN seconds: else the actions that index holds would wait for a commit that never comes.
    """

    def __init__(self) -> None:
        self.acked = 0
        self.at = 0.0

    def reset(self) -> None:
        """A new master: nothing is acked to it yet."""
        self.acked, self.at = 0, 0.0

    def take(self, index: int, committed: int, now: float) -> int | None:
        """The index to ack now (this replica holds up to ``index``, the master committed ``committed``), or None."""
        if index > self.acked or (committed < self.acked and now >= self.at + ACK_AGAIN):
            self.acked, self.at = max(index, self.acked), now
            return self.acked
        return None

    def due(self, committed: int) -> float | None:
        """When an ack the master's commit (``committed``) has not counted goes again, or None."""
        return self.at + ACK_AGAIN if committed < self.acked else None
