"""Churn: how often masters replaced one another lately, and how much longer to wait for one because of it (pure)."""

from __future__ import annotations

from collections import deque
from typing import Final

from ..ids import PeerId

__all__ = ["CHURN_BACKOFF", "CHURN_WINDOW", "Churn"]

CHURN_WINDOW: Final = 10.0
"""Seconds within which one master replacing another counts as churn. A room whose masters keep being
deposed (starved CPUs: 12 peers on 2 vCPUs, each new master unheard while it serves what waited)
backs off until one master lasts long enough to serve it; a room quiet this long replaces a dead
master as fast as ever."""

CHURN_BACKOFF: Final = 3
"""The election timeout doubles at most this many times under churn (8x: 2.4 s by default)."""


class Churn:
    """When masters replaced one another (the last ``CHURN_BACKOFF`` times)."""

    def __init__(self) -> None:
        self._followed: PeerId | None = None  # the last master known (None only before the first)
        self._replaced: deque[float] = deque(maxlen=CHURN_BACKOFF)

    def followed(self, master: PeerId, now: float) -> bool:
        """``master`` is known at ``now``: True if it replaced another one."""
        replaced = self._followed not in (None, master)
        if replaced:
            self._replaced.append(now)
        self._followed = master
        return replaced

    def factor(self, now: float) -> int:
        """2 to the number of replacements within ``CHURN_WINDOW``, at most ``CHURN_BACKOFF`` times (1 in a quiet room).

        The first replacement counts too: a master just elected after a death serves what waited
        for it (every survivor's re-sent actions, their reports) and on starved CPUs goes unheard
        for longer than one election timeout while it does. Its death is still detected within 2x.
        """
        recent = sum(1 for at in self._replaced if now - at < CHURN_WINDOW)
        return 1 << min(recent, CHURN_BACKOFF)
