"""Room-wide admission of incoming handshakes before any crypto: a budget for strangers (pure, time as an argument).

Each Hello a listener answers costs it a SPAKE2 exchange and a signature, and each Challenge it
sends lets the dialer test one guess of the room secret. A stranger's connection (from an address
that never proved the room key here) takes one token of a room-wide bucket before any of that
work; an empty bucket refuses it cheaply. The token comes back when the dialer proves the key, so
only handshakes that never authenticate spend the budget: at most :data:`GUESS_RATE` guesses per
second for the whole room (plus :data:`GUESS_BURST` at once), whatever the number of addresses.
Addresses that proved the key lately are trusted and draw on their own small allowance, so a
flood of strangers does not starve members' re-dials; a handshake from a trusted address that
fails makes it a stranger again (each trusted address can be spent on a guess once).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

__all__ = ["GUESS_BURST", "GUESS_RATE", "MEMBER_BURST", "MEMBER_RATE", "TRUSTED_KEPT", "Admission", "Bucket"]

GUESS_RATE: Final = 10.0
"""Strangers' handshakes (each at most one guess of the secret) admitted per second, room-wide."""
GUESS_BURST: Final = 10.0
"""Strangers' handshakes admitted at once when the budget was idle."""
MEMBER_RATE: Final = 10.0
"""Handshakes from trusted addresses admitted per second."""
MEMBER_BURST: Final = 20.0
TRUSTED_KEPT: Final = 1024
"""Addresses remembered as having proven the room key (the oldest forgotten first)."""


class Bucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` kept."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        if self._at is None or now > self._at:
            self._at = now

    def take(self, now: float, cost: float = 1.0) -> float | None:
        """Take ``cost`` tokens: None if taken, else the seconds until they are there."""
        self._refill(now)
        if self._tokens >= cost:
            self._tokens -= cost
            return None
        return (cost - self._tokens) / self.rate

    def give_back(self, cost: float = 1.0) -> None:
        """Return tokens taken."""
        self._tokens = min(self.burst, self._tokens + cost)


class Admission:
    """Which incoming connections may start a handshake, room-wide (see the module docstring)."""

    def __init__(self) -> None:
        self._strangers = Bucket(GUESS_RATE, GUESS_BURST)
        self._members = Bucket(MEMBER_RATE, MEMBER_BURST)
        self._trusted: OrderedDict[str, None] = OrderedDict()
        self._proved: OrderedDict[str, None] = (
            OrderedDict()
        )  # addresses that proved the key (a wrong secret since: not)
        self._charged: dict[int, float] = {}  # admitted strangers' handles: their cost comes back if they prove the key

    def trusted(self, source: str) -> bool:
        """``source`` proved the room key lately (and failed no handshake since)."""
        return source in self._trusted

    def admit(self, handle: int, source: str, now: float, *, room: int = 1) -> float | None:
        """Admit the connection ``handle`` from ``source``: None if admitted, else seconds until one may be.

        ``room``: the peers of the room this endpoint holds links with, itself included. Every one
        of them listens, so each stranger costs ``room`` tokens here: the room as a whole
        answers :data:`GUESS_RATE` strangers a second, not that many per peer.
        """
        if source in self._trusted:
            return self._members.take(now)
        cost = float(min(max(room, 1), GUESS_BURST))
        wait = self._strangers.take(now, cost)
        if wait is None:
            self._charged[handle] = cost
        return wait

    def authenticated(self, handle: int, source: str) -> None:
        """The dialer of ``handle`` proved the room key: its token comes back and ``source`` is trusted."""
        cost = self._charged.pop(handle, None)
        if cost is not None:
            self._strangers.give_back(cost)
        for kept in (self._trusted, self._proved):
            kept[source] = None
            kept.move_to_end(source)
            while len(kept) > TRUSTED_KEPT:
                kept.popitem(last=False)

    def over(self, handle: int) -> None:
        """The handshake of ``handle`` ended: a stranger that never proved the key keeps its token spent."""
        self._charged.pop(handle, None)

    def failed(self, source: str, *, wrong_secret: bool) -> bool:
        """A handshake from ``source`` failed: it is a stranger again. True: strike the address.

        A handshake cut short (not a wrong secret) from an address that proved the key before is
        not struck: a slow or starved member, often one of several peers on one host (the
        overloaded 8-process flood: their re-dials were refused for up to a minute). It still pays
        the strangers' budget until it proves the key again; a wrong secret strikes it, and from
        then on so does every failure.
        """
        self._trusted.pop(source, None)
        if wrong_secret:
            self._proved.pop(source, None)
        return wrong_secret or source not in self._proved
