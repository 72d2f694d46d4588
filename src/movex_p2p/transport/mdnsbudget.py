"""How much each source address may add to our mDNS cache (pure, time as an argument).

Anyone on the LAN can multicast mDNS responses, and zeroconf caches every record it hears and
tells our browser of every new name: a stranger announcing 10,000 made-up members at 1,000 a
second cost every peer CPU and 13-17 MB (issue 19, S4). A legitimate host announces its peers
(one, on a real LAN) and answers queries about them, so each source address gets:

- a budget of records (:data:`RECORD_RATE` a second, :data:`RECORD_BURST` at once), and
- a budget of new members (instances of our service type not in the cache yet:
  :data:`MEMBER_RATE` a second, :data:`MEMBER_BURST` at once);

a response over either budget is dropped whole, before zeroconf caches any of it, and counted
by reason. At most :data:`SOURCES_KEPT` sources are remembered (the least recently heard is
forgotten first: it starts again with a full budget). Whatever the number of sources, at most
:data:`MEMBERS_KEPT` members of our service type are held in the cache: a response that would
add one more is dropped (one who spoofs many source addresses can fill that, not more).

One source is not budgeted per source, only capped: :data:`SHARED_SOURCE` (127.0.0.1), where
every zeroconf on this machine answers unicast questions from. Many peers of one machine share it
(the tests and the local demo, all in one namespace), and no packet from the LAN can carry it
(the kernel drops a 127/8 source arriving on any other interface).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from .admission import Bucket

__all__ = [
    "MAX_TTL",
    "MEMBERS_KEPT",
    "MEMBER_BURST",
    "MEMBER_RATE",
    "OVER_MEMBERS",
    "OVER_RECORDS",
    "RECORD_BURST",
    "RECORD_RATE",
    "SHARED_SOURCE",
    "SOURCES_KEPT",
    "TOO_MANY_MEMBERS",
    "Dropped",
    "MdnsBudget",
]

RECORD_RATE: Final = 50.0
"""Records a second one source address may bring (a peer's announcement is 4 or 5)."""
RECORD_BURST: Final = 600.0
"""Records one source may bring at once: room for several peers on one address starting together."""
MEMBER_RATE: Final = 0.1
"""New members (instance names of our service type) a second one source may announce."""
MEMBER_BURST: Final = 32.0
"""New members one source may announce at once (several peers of one host, e.g. the tests)."""
SOURCES_KEPT: Final = 1024
"""Source addresses whose budgets are remembered."""
MEMBERS_KEPT: Final = 512
"""Members of our service type held in the cache, from all sources (the mesh keeps 256)."""
SHARED_SOURCE: Final = "127.0.0.1"
"""The source of this machine's own zeroconf unicast answers: capped by :data:`MEMBERS_KEPT` only."""
MAX_TTL: Final = 4500
"""Seconds a record may be cached at most (zeroconf's own longest TTL): a flood expires."""

OVER_RECORDS: Final = "mDNS records over the source's budget"
OVER_MEMBERS: Final = "new mDNS members over the source's budget"
TOO_MANY_MEMBERS: Final = "mDNS members over the cap"


def _no_members() -> tuple[int, int]:
    return (0, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropped:
    """A response was dropped before it reached the cache."""

    reason: str
    first: bool
    """The first of its source's responses dropped since one was admitted (worth a log line)."""


@dataclass(slots=True)
class _Source:
    records: Bucket = field(default_factory=lambda: Bucket(RECORD_RATE, RECORD_BURST))
    members: Bucket = field(default_factory=lambda: Bucket(MEMBER_RATE, MEMBER_BURST))
    dropping: bool = False
    """Its last response was dropped."""


class MdnsBudget:
    """Which mDNS responses may reach the cache (see the module docstring)."""

    def __init__(self, *, sources_kept: int = SOURCES_KEPT, members_kept: int = MEMBERS_KEPT) -> None:
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._sources_kept = sources_kept
        self._members_kept = members_kept
        self.refused: Counter[str] = Counter()
        """Responses dropped, by reason."""

    @property
    def sources(self) -> int:
        """Source addresses remembered now."""
        return len(self._sources)

    def admit(
        self, source: str, *, records: int, now: float, members: Callable[[], tuple[int, int]] = _no_members
    ) -> Dropped | None:
        """May a response from ``source`` carrying ``records`` records go on? None if so, else why it is dropped.

        ``members()`` (called only if the records fit the budget) counts the instances of our
        service type in the response that the cache does not hold yet, and those it holds now.
        """
        entry = self._sources.get(source)
        if entry is None:
            entry = self._sources[source] = _Source()
            while len(self._sources) > self._sources_kept:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        reason: str | None = None
        shared = source == SHARED_SOURCE
        if not shared and entry.records.take(now, float(records)) is not None:
            reason = OVER_RECORDS
        else:
            new, held = members()
            if new and held + new > self._members_kept:
                reason = TOO_MANY_MEMBERS
            elif new and not shared and entry.members.take(now, float(new)) is not None:
                reason = OVER_MEMBERS
        first = reason is not None and not entry.dropping
        entry.dropping = reason is not None
        if reason is None:
            return None
        self.refused[reason] += 1
        return Dropped(reason=reason, first=first)
