"""Who counts in one peer's election: its links, the silent, the membership, what each link follows (pure)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Final

from ..ids import PeerId, Term

__all__ = ["MAX_MEMBERS", "SILENT_COUNTS", "VIEW_EVERY", "VIEW_GRACE", "Room"]

MAX_MEMBERS: Final = 256
"""MAJORITY: members remembered at once (the longest gone is forgotten first)."""
VIEW_EVERY: Final = 1.0
"""Seconds between two :class:`~.messages.View` datagrams to every linked peer (also sent at each change)."""
SILENT_COUNTS: Final = 1
"""Election timeouts a silent peer still counts in the size of the AVAILABLE group (it cannot vote)."""
VIEW_GRACE: Final = 1.0
"""Seconds a new link has to say what it follows before ``ElectionMachine.agreed`` stops waiting for it."""


class Room:
    """The group that elects (per policy), the MAJORITY membership and the linked peers' views.

    AVAILABLE: the linked, responsive players, self included. MAJORITY: every player ever linked
    (the membership) minus graceful leavers and those gone ``member_expiry``.
    """

    def __init__(self, me: PeerId, *, available: bool, election_timeout: float) -> None:
        self._me = me
        self._available = available
        self._timeout = election_timeout
        self.connected: frozenset[PeerId] = frozenset()
        """The OTHER peers with an open link."""
        self.silent: dict[PeerId, float] = {}
        """Linked but unresponsive (since when): they cannot vote."""
        self.heard: dict[PeerId, float] = {}
        """When anything last arrived from each peer."""
        self.joining: frozenset[str] = frozenset()
        """Known, unlinked peers: they count until a master is known."""
        self.spectators: frozenset[PeerId] = frozenset()
        """The OTHER peers known to be spectators: they count in no vote or quorum."""
        self.members: set[PeerId] = {me}
        self._gone_at: dict[PeerId, float] = {}  # when each member disconnected
        self._views: dict[PeerId, tuple[Term, PeerId | None]] = {}  # what each linked peer follows
        self._view_heard: dict[PeerId, float] = {}
        self._linked_at: dict[PeerId, float] = {}

    def heard_from(self, peer: PeerId, now: float) -> None:
        """Something arrived from ``peer``: it is responsive."""
        self.heard[peer] = now
        self.silent.pop(peer, None)

    def suspect(self, now: float, master: PeerId | None, asked_at: float | None) -> None:
        """The election timer fired: the master, and peers silent since our pre-vote began, are unresponsive.

        AVAILABLE leaves them out of the group until they speak again, so a survivor whose
        transport has not yet noticed a death still elects.
        """
        if master is not None:
            self.silent.setdefault(master, now)
        if asked_at is not None:
            for p in self.connected:
                if self.heard.get(p, -math.inf) < asked_at:
                    self.silent.setdefault(p, now)

    def group(self) -> set[PeerId] | frozenset[PeerId]:
        """The players whose votes count now (self included)."""
        if self._available:
            return (self.connected - self.silent.keys() - self.spectators) | {self._me}
        return self.members - self.spectators

    def has_quorum(self, voters: set[PeerId], now: float) -> bool:
        """Do ``voters`` form a quorum of the group (and of the peers still joining)?"""
        group = self.group()
        # joining: peers known but not linked yet count too (they cannot vote before they link)
        size = len(group) + len(self.joining.difference(group))
        if self._available:
            # Silent peers cannot vote, but the recently silent still count: on a lossy Wi-Fi a few
            # heartbeats in a row go missing now and then, and a peer linked only to its master
            # would otherwise win alone and take the room. Silent longer, they are gone.
            counted = SILENT_COUNTS * self._timeout
            size += sum(
                1
                for peer, since in self.silent.items()
                if now - since < counted and peer not in self.spectators and peer not in self.joining
            )
        return len(voters & group) > size // 2

    def quorum_of(self, voters: set[PeerId], *, following: bool) -> bool:
        """Do ``voters`` form a quorum of our group?

        While we follow (or are) a master, we count ourselves: a rival must win a quorum that
        includes what we would have voted. Without one (just arrived, or our master is gone),
        a term we did not vote in is judged by the others' votes only.
        """
        group = set(self.group())
        if not following and self._me not in voters:
            group.discard(self._me)
        return len(voters & group) > len(group) // 2

    def links_changed(self, peers: frozenset[PeerId], now: float) -> tuple[frozenset[PeerId], frozenset[PeerId]]:
        """The linked peers are now ``peers`` (at ``now``); returns the links closed and opened."""
        gone, new = self.connected - peers, peers - self.connected
        self.connected = peers
        self.members.update(peers)
        for peer in gone:
            self._views.pop(peer, None)
            self._view_heard.pop(peer, None)
            self._linked_at.pop(peer, None)
            if peer in self.members:
                self._gone_at[peer] = now
        for peer in new:
            self._linked_at[peer] = now
            self._gone_at.pop(peer, None)
        self.silent = {p: since for p, since in self.silent.items() if p in self.connected}
        return gone, new

    def left(self, peer: PeerId) -> None:
        """``peer`` said goodbye: it leaves the membership."""
        self.members.discard(peer)
        self._gone_at.pop(peer, None)

    def expire(self, now: float, expiry: float) -> list[PeerId]:
        """Forget members gone ``expiry`` seconds (or the longest gone, past ``MAX_MEMBERS``); returns them."""
        known = self.members | self.connected
        for peer in [p for p in self.heard if p not in known]:  # keyed by senders: only peers we know
            del self.heard[peer]
        forgotten: list[PeerId] = []
        for peer, gone in list(self._gone_at.items()):
            if peer in self.connected:
                del self._gone_at[peer]
            elif now - gone >= expiry or len(self.members) > MAX_MEMBERS:
                del self._gone_at[peer]
                self.members.discard(peer)
                forgotten.append(peer)
        return forgotten

    def view(self, peer: PeerId, term: Term, master: PeerId | None, now: float) -> None:
        """Linked ``peer`` says it follows ``master`` in ``term``."""
        self._views[peer] = (term, master)
        self._view_heard[peer] = now

    def agreed(self, now: float, mine: tuple[Term, PeerId], peers: Iterable[PeerId]) -> bool:
        """Do all ``peers`` follow ``mine``? One linked less than ``VIEW_GRACE`` ago must have said so."""
        for peer in peers:
            view = self._views.get(peer)
            if view is None:
                if now - self._linked_at.get(peer, now) < VIEW_GRACE:
                    return False
            elif view != mine:
                return False
        return True

    def follow_elsewhere(
        self, now: float, group: Collection[PeerId], me: PeerId, linked: Collection[PeerId], term: Term
    ) -> bool:
        """Do most of ``group`` follow, and lately said so, a master of ``term`` or newer that ``me`` has no link to?"""
        if not group:
            return False
        elsewhere = 0
        for peer in group:
            view = self._views.get(peer)
            if view is None or now - self._view_heard.get(peer, -math.inf) > 2 * VIEW_EVERY:
                continue
            their_term, master = view
            if master is not None and master != me and master not in linked and their_term >= term:
                elsewhere += 1
        return elsewhere * 2 > len(group) + 1
