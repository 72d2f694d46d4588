"""Twins: is another live process of this peer's identity in the room? (pure: no I/O, no clock)

Two processes of one identity announce the same mDNS name, and each sees the other's record
of its own id. Such a record is a hint (anyone may announce any id): it is dialed once (a
probe). Only a handshake proves a twin: one in which the other side signs with our key over our
fresh nonce and names another incarnation than ours. Each side of a handshake signs over the
other's nonce (the listener its Challenge, the dialer its Offer), so both processes learn it
from the same handshake. The later incarnation keeps the links (every peer replaces an older
incarnation's link with a newer one's that proves the key): the earlier one is *superseded*,
drops what it holds and dials nobody from then on. See docs/security.md (I2).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..ids import PeerId

if TYPE_CHECKING:
    from .discovery import Announcement

__all__ = ["CHECKED_LIMIT", "MAX_TWINS", "PENDING", "DropAll", "ReportTwin", "Twins"]

PENDING: Final = 4
"""Records of our own id waiting for their probe (newest first; one probe runs at a time)."""
CHECKED_LIMIT: Final = 256
"""Records of our own id remembered as probed (each is probed once; the oldest is forgotten first)."""
MAX_TWINS: Final = 8
"""Twins (incarnations of our identity proven live) reported at most."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportTwin:
    """Tell the node that another live process holds this peer's key (``IdentityInUse``)."""

    superseded: bool
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DropAll:
    """A later twin keeps the links: drop every link and authenticated handshake held."""


_Record = tuple[int, tuple[str, ...], int]
"""A record of our own id as told apart: port, addresses, incarnation."""


def _key(record: Announcement) -> _Record:
    return (record.port, record.addresses, record.incarnation)


class Twins:
    """Records of our own id to probe, and the twins a handshake proved."""

    def __init__(self, me: PeerId, incarnation: int) -> None:
        self.me = me
        self.incarnation = incarnation
        self.superseded = False
        """A later twin proved itself: this endpoint holds and dials nothing any more."""
        self.probing = False
        self._pending: list[Announcement] = []
        self._checked: OrderedDict[_Record, None] = OrderedDict()
        self._twins: set[int] = set()

    def announced(self, record: Announcement) -> Announcement | None:
        """A record of our own id (a hint): the record to probe now, if any."""
        if record.incarnation == self.incarnation or record.incarnation in self._twins or self.superseded:
            return None  # our own record, or a twin already proven
        key = _key(record)
        if key in self._checked:
            return None  # probed once already: a record proves nothing by coming again
        self._pending = [record, *(r for r in self._pending if _key(r) != key)][:PENDING]
        return self._next()

    def probe_ended(self) -> Announcement | None:
        """The probe that ran is over: the next record to probe, if any."""
        self.probing = False
        return self._next()

    def _next(self) -> Announcement | None:
        if self.probing or not self._pending or self.superseded:
            return None
        record = self._pending.pop(0)
        self._checked[_key(record)] = None
        while len(self._checked) > CHECKED_LIMIT:
            self._checked.popitem(last=False)
        self.probing = True
        return record

    def proven(self, incarnation: int) -> list[ReportTwin | DropAll]:
        """A handshake proved our key held by a live process of ``incarnation`` (not ours): what to do."""
        if incarnation == self.incarnation:
            raise ValueError("our own incarnation is no twin")
        if self.superseded or incarnation in self._twins or len(self._twins) >= MAX_TWINS:
            return []  # told already
        self._twins.add(incarnation)
        where = f"with this peer's identity ({self.me}, incarnation {incarnation}, ours {self.incarnation})"
        if incarnation < self.incarnation:
            text = f"another process was in the room {where}: this one took its links"
            return [ReportTwin(superseded=False, detail=text)]
        self.superseded = True
        self._pending.clear()
        text = f"another process joined the room {where} and took its links"
        return [ReportTwin(superseded=True, detail=text), DropAll()]
