"""Answers the master owes each peer, paid out of that peer's byte budget (pure: ``now`` is an argument).

A ``Report`` or a ``SyncRequest`` is a few dozen bytes; the snapshots (and re-sent secrets) that
answer it can be megabytes. So what the master sends in answer to one member's requests counts
against that member's budget, a token bucket of bytes (:class:`Budget`), and an answer the bucket
cannot pay yet is *owed*: kept once per (peer, what), coalesced (a second request for the same
snapshot while one is owed adds nothing, and the snapshot is built when it is paid, so the latest
state wins), and sent, in the order it was owed, as the bucket refills (:attr:`Answers.due`). A
``Report``'s reply (``Replied``: "you are synced") waits behind the snapshots owed before it.

The bucket's size follows the room: :data:`ROOMS` full copies of every resource the master holds
(:func:`room_bytes`, at least :data:`MIN_BURST`), refilled in :data:`REFILL` seconds (at least
:data:`MIN_RATE` bytes/s). Why: a legitimate peer needs at most one copy of the room per
recovery (a newcomer or a peer back from a lost link: every resource; a lagging or mismatching
replica: one), so a full bucket serves a recovery at once, and a second one right after it too (a
master change followed by a resync); a member asking for more than that gets one room per
``REFILL / ROOMS`` seconds, whatever it sends. Owed answers are bounded by the resources the master
holds (one per rid per peer) plus :data:`MAX_REPLIES` replies per peer; beyond that a request is
refused (``RemoteProtocolError``: the node reports it as ``Dropped``).

The snapshots themselves are shared (:class:`SharedSnapshots`): one per resource and log position,
encoded once, so every peer that asks at the same position gets the same bytes (one copy in memory
however many links queue it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import RemoteProtocolError
from ..ids import PeerId, Rid, Term
from .effects import Effect, Send
from .messages import Replied, Secret, Snapshot
from .replica import Replica
from .state import size_of

__all__ = [
    "KEPT_BUCKETS",
    "MAX_REPLIES",
    "MIN_BURST",
    "MIN_RATE",
    "OVERHEAD",
    "REFILL",
    "ROOMS",
    "SMALL",
    "Answers",
    "Budget",
    "SharedSnapshots",
    "room_bytes",
]

ROOMS: Final = 2
"""Full copies of the room (every resource's snapshot) a full bucket pays for at once."""

REFILL: Final = 10.0
"""Seconds an empty bucket takes to fill up again."""

MIN_BURST: Final = 64 * 1024
"""Bytes a bucket holds at least (on top of ``ROOMS`` rooms: subscribers, held references, secrets)."""

MIN_RATE: Final = 256 * 1024
"""Bytes per second a bucket refills at least (small rooms: a spectator's opaque refreshes stay quick)."""

SMALL: Final = 32
"""Bytes counted for a small answer (a reply to a Report, a commit index): about their encoded size."""

OVERHEAD: Final = 512
"""Bytes counted per resource on top of its state when sizing the room (a snapshot's other fields)."""

MAX_REPLIES: Final = 64
"""Report replies one peer may be owed at once (an honest peer has one or two)."""

KEPT_BUCKETS: Final = 4096
"""Buckets remembered that are not full (a full one is the same as none: forgotten)."""


def room_bytes(resources: Mapping[Rid, Replica]) -> int:
    """About the bytes of one snapshot of every resource in ``resources`` (states' sizes are cached)."""
    return sum(size_of(res.state) + OVERHEAD for res in resources.values())


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    """When ``tokens`` was counted."""


class Budget:
    """A token bucket of bytes per peer: ``burst`` bytes at most, refilled at ``rate`` bytes per second."""

    def __init__(self, *, burst: int = MIN_BURST, rate: float = MIN_RATE) -> None:
        self.burst = burst
        self.rate = rate
        self._buckets: dict[PeerId, _Bucket] = {}
        self.charged: dict[PeerId, int] = {}
        """Bytes charged so far, per peer (the KEPT_BUCKETS most recently charged; for tests and benchmarks)."""

    @property
    def kept(self) -> list[PeerId]:
        """The peers whose bucket is not known to be full (the least recently charged first)."""
        return list(self._buckets)

    def resize(self, room: int) -> None:
        """Size the buckets for a room of ``room`` bytes (see the module docstring)."""
        self.burst = ROOMS * room + MIN_BURST
        self.rate = max(float(MIN_RATE), self.burst / REFILL)

    def tokens(self, peer: PeerId, now: float) -> float:
        """Bytes ``peer`` may be sent now."""
        bucket = self._buckets.get(peer)
        if bucket is None:
            return float(self.burst)
        elapsed = max(0.0, now - bucket.at)  # a clock that went back refills nothing
        return min(float(self.burst), bucket.tokens + elapsed * self.rate)

    def affords(self, peer: PeerId, cost: int, now: float) -> bool:
        """Can ``peer`` be sent ``cost`` bytes now? (One answer larger than the burst goes from a full bucket.)"""
        return self.tokens(peer, now) >= min(cost, self.burst)

    def charge(self, peer: PeerId, cost: int, now: float) -> None:
        """Count ``cost`` bytes sent to ``peer`` (its bucket may go below zero: it then waits longer)."""
        tokens = self.tokens(peer, now) - cost
        self._buckets.pop(peer, None)
        self._buckets[peer] = _Bucket(tokens=tokens, at=now)  # the least recently charged first
        self.charged[peer] = self.charged.pop(peer, 0) + cost  # the most recently charged last
        buckets = self._buckets
        while buckets:  # full again, or too many: forgotten (a full bucket is the same as none)
            oldest = next(iter(buckets))
            if len(buckets) <= KEPT_BUCKETS and self.tokens(oldest, now) < self.burst:
                break
            del buckets[oldest]
        while len(self.charged) > KEPT_BUCKETS:
            del self.charged[next(iter(self.charged))]

    def when(self, peer: PeerId, cost: int, now: float) -> float:
        """When ``peer`` can be sent ``cost`` bytes, if nothing else is charged to it meanwhile."""
        missing = min(cost, self.burst) - self.tokens(peer, now)
        return now if missing <= 0 else now + missing / self.rate


@dataclass(frozen=True, slots=True)
class _SnapshotOf:
    rid: Rid


@dataclass(frozen=True, slots=True)
class _SecretsOf:
    """Every private action the peer authored that the master holds."""


@dataclass(frozen=True, slots=True)
class _ReplyTo:
    req: int


_Owed = _SnapshotOf | _SecretsOf | _ReplyTo
_SECRETS: Final = _SecretsOf()


class SharedSnapshots:
    """The latest snapshot the master answered with, per resource: built and encoded once per log position.

    ``encode`` (the node passes the wire codec) gives a snapshot's bytes: its size is then exact
    and the node sends those very bytes (:meth:`encoded`); without it, the size is estimated.
    """

    def __init__(self, encode: Callable[[Snapshot], bytes] | None = None) -> None:
        self._encode = encode
        self._latest: dict[Rid, tuple[Snapshot, int, bytes | None]] = {}
        self.built = 0
        """Snapshots built (and encoded) since the start: one per resource and position, however many ask."""

    def get(self, res: Replica, term: Term, index: int) -> tuple[Snapshot, int]:
        """The snapshot of ``res`` at (``term``, ``index``) and its size in bytes."""
        snap = res.snapshot(term=term, index=index)
        cached = self._latest.get(res.rid)
        if cached is not None and cached[0].state is snap.state and cached[0] == snap:
            return cached[0], cached[1]
        data = None if self._encode is None else self._encode(snap)
        size = len(data) if data is not None else size_of(snap.state) + OVERHEAD
        self._latest[res.rid] = (snap, size, data)
        self.built += 1
        return snap, size

    def encoded(self, message: object) -> bytes | None:
        """The bytes of ``message`` if it is a snapshot this cache holds (else None: encode it)."""
        if type(message) is not Snapshot:
            return None
        cached = self._latest.get(message.rid)
        return cached[2] if cached is not None and cached[0] is message else None

    def forget(self, rid: Rid) -> None:
        """``rid`` changed or was removed: its bytes are not kept any longer (links may still hold them)."""
        self._latest.pop(rid, None)

    @property
    def held_bytes(self) -> int:
        """Bytes of encodings this cache holds."""
        return sum(len(data) for _, _, data in self._latest.values() if data is not None)


class Answers:
    """What the master owes each peer in answer to its Reports and SyncRequests, paid as its budget allows.

    ``resources`` is the master's own map (read, never written). A peer's owed answers go out in
    the order they were owed; the first one its bucket cannot pay holds the rest back. The
    master's own client (``me``) is answered locally: it has no budget.
    """

    def __init__(
        self,
        *,
        me: PeerId | None = None,
        term: Term,
        resources: Mapping[Rid, Replica],
        encode: Callable[[Snapshot], bytes] | None = None,
    ) -> None:
        self.me = me
        self.term = term
        self._resources = resources
        self.budget = Budget()
        self.shared = SharedSnapshots(encode)
        self._owed: dict[PeerId, dict[_Owed, None]] = {}
        self._replies: dict[PeerId, int] = {}  # owed replies per peer
        self._wake: dict[PeerId, float] = {}  # when each peer's next owed answer can be paid
        self._sized_at: int | None = None  # the log index the budget was sized at

    # -- owing -----------------------------------------------------------------------------------

    def snapshot(self, peer: PeerId, rid: Rid) -> None:
        """``peer`` needs a snapshot of ``rid`` (once, however often it asks before it is sent)."""
        self._owe(peer, _SnapshotOf(rid))

    def holds(self, peer: PeerId, rid: Rid) -> None:
        """``peer`` reported it holds our replica of ``rid``: a snapshot owed to it is no longer needed."""
        owed = self._owed.get(peer)
        if owed is not None and owed.pop(_SnapshotOf(rid), 0) is None:
            self._recheck(peer)

    def secrets(self, peer: PeerId) -> None:
        """``peer`` (back after a restart?) gets the private actions it authored that the master holds."""
        self._owe(peer, _SECRETS)

    def reply(self, peer: PeerId, req: int) -> None:
        """Report ``req`` of ``peer`` is answered once every answer owed before it is sent."""
        if self._replies.get(peer, 0) >= MAX_REPLIES:
            raise RemoteProtocolError(f"{MAX_REPLIES} reports already wait for their answer: refused")
        self._replies[peer] = self._replies.get(peer, 0) + 1
        self._owe(peer, _ReplyTo(req))

    def _owe(self, peer: PeerId, what: _Owed) -> None:
        self._owed.setdefault(peer, {})[what] = None

    # -- paying ----------------------------------------------------------------------------------

    @property
    def peers(self) -> list[PeerId]:
        """The peers owed something."""
        return list(self._owed)

    @property
    def owed(self) -> int:
        """Answers owed, every peer together."""
        return sum(len(owed) for owed in self._owed.values())

    @property
    def due(self) -> float | None:
        """When an owed answer can be paid (None: nothing is owed)."""
        return min(self._wake.values(), default=None)

    def tick(self, now: float, index: int) -> list[Effect]:
        """Pay what the buckets refilled for (the master's log is at ``index``)."""
        effects: list[Effect] = []
        for peer in [p for p, at in self._wake.items() if at <= now]:
            effects += self.pay(peer, now, index)
        return effects

    def pay(self, peer: PeerId, now: float, index: int) -> list[Effect]:
        """Send ``peer`` what it is owed, in order, as far as its bucket goes (the log is at ``index``)."""
        owed = self._owed.get(peer)
        if not owed:
            self._settled(peer)
            return []
        if self._wake.get(peer, now) > now:
            return []  # its bucket is known not to pay yet: no snapshot is even built
        self._size(index)
        effects: list[Effect] = []
        while owed:
            what = next(iter(owed))
            messages, cost = self._answer(peer, what, index)
            cost = 0 if peer == self.me else cost
            if cost and not self.budget.affords(peer, cost, now):
                self._wake[peer] = self.budget.when(peer, cost, now)
                return effects
            del owed[what]
            if type(what) is _ReplyTo:
                self._replies[peer] -= 1
            if cost:
                self.budget.charge(peer, cost, now)
            effects += [Send(to=peer, message=m) for m in messages]
        self._settled(peer)
        return effects

    def _answer(self, peer: PeerId, what: _Owed, index: int) -> tuple[Sequence[Snapshot | Secret | Replied], int]:
        """The messages that answer ``what`` now, and the bytes they count for."""
        match what:
            case _SnapshotOf(rid=rid):
                res = self._resources.get(rid)
                if res is None:
                    return [], 0  # removed meanwhile: the peer hears of that from the log
                snap, size = self.shared.get(res, self.term, index)
                return [snap], size
            case _SecretsOf():
                secrets = [
                    Secret(term=self.term, rid=res.rid, seq=h.seq, private=h.action, nonce=h.nonce, origin=h.origin)
                    for res in self._resources.values()
                    for h in res.held
                    if h.author == peer and h.action is not None and not res.type.sealed  # sealed: the author's only
                ]
                return secrets, sum(_secret_size(s) for s in secrets)
            case _ReplyTo(req=req):
                return [Replied(term=self.term, req=req, rid=Rid(""))], SMALL

    def _size(self, index: int) -> None:
        if self._sized_at != index:
            self._sized_at = index
            self.budget.resize(room_bytes(self._resources))

    def _settled(self, peer: PeerId) -> None:
        self._owed.pop(peer, None)
        self._replies.pop(peer, None)
        self._wake.pop(peer, None)

    # -- forgetting ------------------------------------------------------------------------------

    def left(self, peer: PeerId) -> None:
        """``peer`` left: nothing is owed to it any more (it reports again when back; its bucket stays)."""
        self._settled(peer)

    def removed(self, rid: Rid) -> None:
        """``rid`` was removed: no snapshot of it is owed or kept."""
        self.shared.forget(rid)
        for peer, owed in self._owed.items():
            if owed.pop(_SnapshotOf(rid), 0) is None:
                self._recheck(peer)

    def _recheck(self, peer: PeerId) -> None:
        """What ``peer`` is owed first changed: look at it again on the next tick."""
        if peer in self._wake:
            self._wake[peer] = -math.inf


def _secret_size(secret: Secret) -> int:
    """About the bytes of ``secret`` on the wire (its payloads and a fixed envelope)."""
    size = 64 + len(secret.nonce) + len(secret.rid) + size_of(secret.private.payload)
    return size if secret.origin is None else size + size_of(secret.origin.payload)
