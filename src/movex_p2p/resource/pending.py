"""PendingQueue: a peer's own actions awaiting the master, and their stall and stuck timers (pure)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..ids import PeerId, Rid, Term
from .effects import ActionSettled, Effect, Rebased, Send, Stalled, Stuck
from .history import action_body, commitment
from .messages import Applied, Propose, SyncRequest
from .replica import WINDOW, Replica
from .types import Action
from .values import has_fair_values

__all__ = [
    "KEEP_CONFIRMED",
    "KEEP_SECONDS",
    "RESEND_AFTER",
    "STUCK_AFTER",
    "Confirmed",
    "Pending",
    "PendingQueue",
]

KEEP_CONFIRMED = 1024
"""Own confirmed actions kept per resource at least, to re-send any that a deposed master (or a
split's losing one) confirmed and its successor's log lacks."""

KEEP_SECONDS = 60.0
"""Own confirmed actions younger than this are kept as well, however many, as long as their seqs
are within the last ``replica.WINDOW`` (8,192) of the author's: a master deposed in a flood may
have confirmed thousands of one author's actions that its successor never got, and each is
re-sent (before, only the last :data:`KEEP_CONFIRMED` were: the rest were lost). Only within
that window can the author tell by seq which ones the new log holds (older ones it would re-send
by mistake: doubled). 10 s was too short: on 2 overloaded CPUs an 8-process flood lasts longer,
its masters keep changing, and a log lacking an author's first actions won after 10 s. A record
costs ~200 bytes with a small action: a game at 5 actions a second keeps 300 (60 KB), a flood at
most the window (~1.7 MB per resource)."""

MAX_WAS = 8
"""Earlier seqs an action re-sent after splits remembers (the newest): enough for 8 splits in a row."""

RESEND_AFTER = 1.0
"""Seconds without progress on a resource's oldest pending action after which its pending actions are sent again."""

STUCK_AFTER = 5.0
"""Seconds an own action may wait while a master is known (whichever, counted across master changes):
then it is proposed again with a fresh snapshot asked for, and if it still waits as long again, it is
reported stuck (:class:`~.effects.Stuck`)."""


@dataclass(slots=True)
class Pending:
    """An own action sent to the master and not yet confirmed or rejected."""

    seq: int
    action: Action
    private: Action | None = None
    waits: bool = False  # carries master values: not applied until the master resolves it
    index: int | None = None  # applied at this log index, awaiting commit (``majority``)
    nonce: bytes = b""  # with ``private``: the nonce of its commitment
    origin: Action | None = None  # the private half as dispatched, once the master resolved it
    born: float = 0.0  # :meth:`PendingQueue.clock` at its dispatch (or its re-send as a new action)
    stuck: int = 0  # 1: proposed again after STUCK_AFTER; 2: reported stuck
    sealed: bytes = b""  # a sealed type's pair: the commitment sent in place of ``private``
    incarnation: bytes = b""  # of the resource it was dispatched on (signed with it)
    was: tuple[int, ...] = ()  # sent again under a new seq (a split, another creation): its seqs before, newest first
    handle: int = 0  # proposed again under another seq (:meth:`PendingQueue.reissue`): the seq its dispatch returned
    fault: Exception | None = None  # what the app's reducer raised on this peer's view at the dispatch

    @property
    def key(self) -> int:
        """The seq its dispatch returned: what its settlement names (its handle's)."""
        return self.handle or self.seq


@dataclass(frozen=True, slots=True)
class Confirmed:
    """Own action ``seq`` as the master of ``term`` applied it at ``version``."""

    version: int
    term: int
    seq: int
    action: Action
    private: Action | None
    nonce: bytes = b""
    at: float = 0.0  # when it was confirmed (the clock of ``now``)
    was: tuple[int, ...] = ()  # the seqs the same action was confirmed under before (see ``Pending.was``)


class PendingQueue:
    """Own actions per resource awaiting the master: their seqs, re-sends, stall and stuck timers,
    and the recently confirmed ones kept in case a split's losing master confirmed them."""

    def __init__(self, me: PeerId) -> None:
        self.me = me
        self.items: dict[Rid, list[Pending]] = {}
        self.seqs: dict[Rid, int] = {}
        self.confirmed: dict[Rid, deque[Confirmed]] = {}
        self.forgotten: dict[Rid, tuple[int, int]] = {}  # confirmed seqs no longer kept: (highest, bit k = that - k)
        self.forgotten_was: dict[Rid, dict[int, tuple[int, ...]]] = {}  # of those, re-sends: their earlier seqs
        self.since: dict[Rid, float] = {}  # per resource: when its oldest pending action became the oldest
        self.stalls: dict[Rid, int] = {}  # per resource: RESEND_AFTER rounds in a row without progress
        self.known = 0.0  # seconds a master was known, in all, until ``known_at``
        self.known_at: float | None = None  # when the current master became known (None: none now)
        self.stuck_after = STUCK_AFTER
        self.unsure: set[Rid] = set()
        """Resources whose pending actions include re-sends (``was``) that the new master's log may
        hold under an earlier seq (a split's other side confirmed them): none of their actions is
        proposed until a snapshot or the reply to this peer's report shows that log (see :meth:`sure`)."""

    def next_seq(self, rid: Rid, floor: int = 0) -> int:
        """A fresh own seq on ``rid``, above ``floor`` (what the master already holds of ours)."""
        seq = self.seqs[rid] = max(self.seqs.get(rid, 0), floor) + 1
        return seq

    def push(self, rid: Rid, item: Pending, now: float) -> list[Pending]:
        """Queue ``item``; the resource's pending list."""
        if rid not in self.items:
            self.since[rid] = now  # the first pending action: the stall timer starts now
        pending = self.items.setdefault(rid, [])
        pending.append(item)
        return pending

    def clock(self, now: float) -> float:
        """The stuck timers' clock at ``now``: seconds a master was known, in all (it stops while none is).

        Master changes do not set it back: in a room whose masters keep changing (starved CPUs), an
        action that never settles is still reported stuck, never left waiting in silence."""
        return self.known + (0.0 if self.known_at is None else max(0.0, now - self.known_at))

    def restart(self, now: float, *, known: bool = True) -> None:
        """A new master (``known``) or none at ``now``: every stall timer restarts."""
        self.known, self.known_at = self.clock(now), now if known else None
        self.unsure = {rid for rid, items in self.items.items() if known and any(i.was for i in items)}
        for rid in self.items:
            self.since[rid] = now
            self.stalls.pop(rid, None)

    def forget(self, rid: Rid) -> None:
        """``rid`` was removed."""
        for table in (
            self.items,
            self.seqs,
            self.confirmed,
            self.forgotten,
            self.forgotten_was,
            self.since,
            self.stalls,
        ):
            table.pop(rid, None)
        self.unsure.discard(rid)

    @staticmethod
    def propose(rid: Rid, item: Pending, base: int, term: Term) -> Propose:
        """The Propose of pending ``item`` (every seq up to ``base`` is settled)."""
        sealed = bool(item.sealed)  # a sealed pair's private half stays here, only its commitment goes
        half = item.origin or item.private  # as dispatched: its private draws need a beacon
        return Propose(
            term=term,
            rid=rid,
            seq=item.seq,
            base=base,
            action=item.action,
            private=None if sealed else item.private,
            nonce=b"" if sealed else item.nonce,
            sealed=item.sealed,
            incarnation=item.incarnation,
            draw=sealed and half is not None and has_fair_values(half.payload),
        )

    def resend(self, rid: Rid, after: int, master: PeerId | None, term: Term) -> list[Effect]:
        """Propose again the pending actions on ``rid`` above seq ``after``."""
        items = self.items.get(rid, [])
        if master is None or not items or rid in self.unsure:
            return []
        base = items[0].seq - 1
        return [Send(to=master, message=self.propose(rid, i, base, term)) for i in items if i.seq > after]

    def sure(self, rid: Rid, master: PeerId | None, term: Term) -> list[Effect]:
        """This replica of ``rid`` is now the master's log, and what it holds from before is settled:
        propose what still waits, if :attr:`unsure` held it back.

        Proposed at once, a re-send under a new seq would be applied a second time by a master
        whose log has it under the old one: the master knows an action by its author's seq only."""
        if rid not in self.unsure:
            return []
        self.unsure.discard(rid)
        return self.resend(rid, 0, master, term)

    def confirmed_another(self, entry: Applied, now: float) -> ActionSettled | None:
        """An own ``entry`` confirming another action (or commitment) than pending seq ``entry.seq``: that
        action is dropped and reported not settled (never told it settled); None if it is ours."""
        for item in self.items.get(entry.rid, ()):
            if item.seq == entry.seq:
                private = item.origin or item.private  # as dispatched (the master may have resolved it since)
                ours = item.sealed or (b"" if private is None else commitment(item.nonce, private))
                if ours == entry.commitment and action_body(item.action) == action_body(entry.origin or entry.action):
                    return None
                self.take(entry.rid, entry.seq, now, None)
                reason = f"the master confirmed another action as this one (seq {entry.seq})"
                return ActionSettled(rid=entry.rid, seq=item.key, error=reason, refusal="rejected")
        return None

    def take(self, rid: Rid, seq: int, now: float, kept: tuple[int, int, Action] | None) -> Pending | None:
        """Drop ``seq`` from pending (None if it is not); ``kept``: (version, term, action) of its confirmation."""
        items = self.items.get(rid, [])
        for i, item in enumerate(items):
            if item.seq == seq:
                if i == 0:  # progress: the oldest pending action settled
                    self.since[rid] = now
                    self.stalls.pop(rid, None)
                del items[i]
                if kept is not None:  # confirmed at once: kept in case this master loses a split
                    version, term, action = kept
                    record = Confirmed(version, term, seq, action.by(self.me), item.private, item.nonce, now, item.was)
                    book = self.confirmed.setdefault(rid, deque())
                    book.append(record)
                    while seq - book[0].seq >= WINDOW or (
                        len(book) > KEEP_CONFIRMED and now - book[0].at > KEEP_SECONDS
                    ):
                        self._forget(rid, book.popleft())
                if not items:
                    self.items.pop(rid, None)
                    self.since.pop(rid, None)
                    self.stalls.pop(rid, None)
                return item
        return None

    def _forget(self, rid: Rid, record: Confirmed) -> None:
        """Own ``record`` is no longer kept: if a new log lacks it, say so (it cannot be re-sent)."""
        seq = record.seq
        high, mask = self.forgotten.get(rid, (seq, 0))
        if seq > high:  # records are dropped oldest first: the mask moves up
            mask, high = mask << (seq - high), seq
        self.forgotten[rid] = (high, (mask | 1 << (high - seq)) & ((1 << WINDOW) - 1))
        earlier = self.forgotten_was.setdefault(rid, {})
        if record.was:
            earlier[seq] = record.was
        while earlier and high - next(iter(earlier)) >= WINDOW:  # in seq order: the oldest first
            del earlier[next(iter(earlier))]

    def _held(self, res: Replica, seq: int, was: tuple[int, ...]) -> bool | None:
        """Does ``res``'s log hold own action ``seq``, or the same action under a seq it had before?"""
        held = res.holds(self.me, seq)
        if not held and self.held_before(res, was):
            return True  # confirmed again elsewhere, and this log has it from before: re-sending would double it
        return held

    def held_before(self, res: Replica, was: tuple[int, ...]) -> bool:
        """Does ``res``'s log hold an own action under one of the seqs ``was`` it went under before?"""
        return any(res.holds(self.me, s) for s in was)

    def _forgotten_lost(self, res: Replica) -> tuple[int, ...]:
        """The seqs no longer kept that ``res``'s log lacks (each reported once)."""
        high, mask = self.forgotten.get(res.rid, (0, 0))
        lost = []
        rest = mask
        while rest:
            bit = rest & -rest
            rest ^= bit
            seq = high - (bit.bit_length() - 1)
            if self._held(res, seq, self.forgotten_was.get(res.rid, {}).get(seq, ())) is False:
                lost.append(seq)
                mask ^= bit
        if lost:
            self.forgotten[res.rid] = (high, mask)
        return tuple(sorted(lost))

    def rebase_lost(
        self,
        res: Replica,
        now: float,
        master: PeerId | None,
        term: Term,
        reseal: Callable[[Pending], None] | None = None,
    ) -> list[Effect]:
        """Re-send own confirmed actions that the new log lacks (a split's losing side confirmed them);
        ``reseal(item)`` seals a sealed type's private half again under its new seq."""
        kept = self.confirmed.get(res.rid, deque())
        forgotten = self._forgotten_lost(res)
        lost: list[Confirmed] = []
        for confirmed in kept:
            held = self._held(res, confirmed.seq, confirmed.was)  # by seq: another master of a split may hold it too
            if held is None:  # too old to tell by seq: by who wrote its version
                written = res.term_at(confirmed.version)
                held = confirmed.version <= res.version and (written is None or written == confirmed.term)
            if not held:
                lost.append(confirmed)
        if not lost:
            return [Rebased(rid=res.rid, count=0, lost=forgotten)] if forgotten else []
        gone = {id(c) for c in lost}  # thousands may be lost at once: no deque.remove per record
        self.confirmed[res.rid] = deque(c for c in kept if id(c) not in gone)
        effects: list[Effect] = [Rebased(rid=res.rid, count=len(lost), lost=forgotten)]
        if res.rid not in self.items:
            self.since[res.rid] = now
        pending = self.items.setdefault(res.rid, [])
        first = len(pending)
        for confirmed in lost:  # as new actions: their master values stay as first resolved
            item = Pending(
                self.next_seq(res.rid),
                confirmed.action,
                confirmed.private,
                born=self.clock(now),
                nonce=confirmed.nonce,
                incarnation=res.incarnation,
                was=(confirmed.seq, *confirmed.was)[:MAX_WAS],
            )
            if reseal is not None and item.private is not None:
                reseal(item)
            pending.append(item)
        if master is not None:
            base = pending[0].seq - 1
            effects += [Send(to=master, message=self.propose(res.rid, i, base, term)) for i in pending[first:]]
        return effects

    def reissue(
        self, res: Replica, master: PeerId | None, term: Term, reseal: Callable[[Pending], None] | None = None
    ) -> list[Effect]:
        """Propose again, under new seqs, own pending actions signed for another creation of ``res.rid``.

        A snapshot can bring a replica of another creation than the one they were dispatched on: a
        master elected without this peer's report created the rid again (a startup merge), or a
        split's other side won. The master rejects them as signed for a removed resource, so they
        go again on ``res``, in their order, after what :meth:`rebase_lost` re-sent; each keeps
        its handle (:attr:`Pending.key`) and remembers its old seq (:attr:`Pending.was`).
        """
        items = self.items.get(res.rid, [])
        stale = [i for i in items if i.incarnation != res.incarnation]
        if not stale:
            return []
        kept = [i for i in items if i.incarnation == res.incarnation]
        for item in stale:
            item.handle, item.was = item.key, (item.seq, *item.was)[:MAX_WAS]
            item.seq, item.incarnation, item.index = self.next_seq(res.rid), res.incarnation, None
            if reseal is not None and item.private is not None:
                reseal(item)
        pending = self.items[res.rid] = kept + stale
        if master is None:
            return []
        base = pending[0].seq - 1
        return [Send(to=master, message=self.propose(res.rid, i, base, term)) for i in stale]

    def waits(self) -> list[float]:
        """When each resource's stall or stuck timer is next due."""
        waits: list[float] = []
        for rid, items in self.items.items():
            waits.append(self.since.get(rid, 0.0) + RESEND_AFTER)
            due = self._stuck_due(items)
            if due is not None:
                waits.append(due)
        return waits

    def _stuck_due(self, items: list[Pending]) -> float | None:
        """When the oldest of ``items`` not yet reported stuck reaches its next STUCK_AFTER step, or None."""
        if self.known_at is None:
            return None  # the clock stands still until a master is known
        for item in items:
            if item.stuck < 2:
                return self.known_at + item.born + self.stuck_after * (item.stuck + 1) - self.known
        return None

    def stalled(
        self, now: float, master: PeerId | None, term: Term, may_sync: Callable[[Rid], bool], effects: list[Effect]
    ) -> list[Effect]:
        """``effects`` and the timers' work at ``now``; ``may_sync(rid)``: a snapshot of ``rid`` may be asked for.

        Per resource: when its oldest pending action saw no progress for RESEND_AFTER seconds
        (frames lost? a confirmation this replica never applied?), its pending actions are sent
        again. The master drops a re-sent action it already applied; if the entry that confirmed
        it was lost on the way, only a snapshot (whose applied seqs settle it) ends the wait. A
        master that is merely slow must not be flooded with snapshots, so they are asked for
        after 1, 2, 4, 8... stalled rounds in a row. Progress on one resource never hides a stall
        on another, nor does progress on newer actions hide an older one that waits.

        An action still pending after STUCK_AFTER seconds with a master known (:meth:`clock`:
        counted across master changes, not while none is known) is proposed again with a snapshot
        asked for; one still pending after twice that is reported (:class:`~.effects.Stuck`) once.
        It stays pending: if the master applies it later, the state shows it.
        """
        if master is None:
            for rid in self.items:
                self.since[rid] = now
            return effects
        stalled, waited = 0, 0.0
        for rid, items in list(self.items.items()):
            since = self.since.get(rid, now)
            resend = snapshot = False
            if now - since >= RESEND_AFTER:
                stalls = self.stalls[rid] = self.stalls.get(rid, 0) + 1
                self.since[rid] = now
                resend = True
                if stalls & (stalls - 1) == 0:  # a power of two
                    snapshot = True
                    stalled += len(items)
                    waited = max(waited, (now - since) * stalls)
            stuck: list[int] = []
            # items are in dispatch order, so none is due before the oldest's first step: the
            # common case (nothing waits that long) costs no scan, however many are pending
            clock = self.clock(now)
            for item in items if clock >= items[0].born + self.stuck_after else ():
                if item.stuck >= 2 or clock < item.born + self.stuck_after * (item.stuck + 1):
                    continue
                item.stuck += 1
                if item.stuck == 1:
                    resend = snapshot = True
                else:
                    stuck.append(item.key)  # the seq its handle has
            if resend:
                effects += self.resend(rid, 0, master, term)
            if snapshot and may_sync(rid):
                effects.append(Send(to=master, message=SyncRequest(term=term, rid=rid)))
            if stuck:
                effects.append(Stuck(rid=rid, seqs=tuple(stuck), master=master, seconds=2 * self.stuck_after))
        if stalled:
            effects.insert(0, Stalled(master=master, seconds=waited, pending=stalled))
        return effects
