"""AuthorWindows: the master's per-author seq windows (dedup, and actions that overtook a lost one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..ids import PeerId, Rid, Term
from .effects import Effect, Send
from .messages import Propose, Rejected, Resend
from .replica import Replica

__all__ = ["MAX_EARLY", "MAX_EARLY_TOTAL", "MAX_SETTLED", "AuthorWindows"]

MAX_EARLY: Final = 4096
"""Actions kept per author and resource while an earlier one is missing."""

MAX_EARLY_TOTAL: Final = 16_384
"""Actions kept while an earlier one is missing, all authors and resources together."""

MAX_SETTLED: Final = 65_536
"""Rejected seqs remembered per (resource, author) pair (the oldest pairs are forgotten first)."""


class AuthorWindows:
    """Which seq of each author comes next on each resource; early actions wait here for the missing one."""

    def __init__(self, term: Term) -> None:
        self.term = term
        self._settled: dict[tuple[Rid, PeerId], int] = {}  # rejected seqs (not in the replicated head)
        self.early: dict[tuple[PeerId, Rid], dict[int, Propose]] = {}
        self.parked = 0  # actions in early, all together

    def last(self, res: Replica, author: PeerId) -> int:
        """The last seq of ``author`` on ``res`` that is settled (applied, or rejected by this master)."""
        return max(res.applied.get(author, 0), self._settled.get((res.rid, author), 0))

    def settle_rejected(self, res: Replica, author: PeerId, seq: int) -> None:
        """``seq`` of ``author`` on ``res`` was rejected: it is settled too."""
        self._settled[(res.rid, author)] = seq
        if len(self._settled) > MAX_SETTLED:
            del self._settled[next(iter(self._settled))]

    def forget_peers(self, gone: Callable[[PeerId], bool]) -> None:
        """Drop what departed peers parked."""
        for key in [key for key in self.early if gone(key[0])]:
            self.parked -= len(self.early.pop(key))

    def forget_rid(self, rid: Rid) -> None:
        """``rid`` was removed: drop what waits for it."""
        for key in [key for key in self.early if key[1] == rid]:
            del self.early[key]

    def order(
        self, sender: PeerId, res: Replica, msg: Propose, apply: Callable[[Propose], list[Effect]]
    ) -> list[Effect]:
        """Apply ``msg`` and what waited behind it, in seq order; hold it while an earlier one is missing."""
        last = self.last(res, sender)
        if msg.seq <= last:
            if msg.seq > res.applied.get(sender, 0):  # rejected earlier (its answer lost, or its author restarted)
                reason = f"seq {msg.seq} of this author was already rejected"
                return [Send(to=sender, message=Rejected(term=self.term, rid=msg.rid, seq=msg.seq, reason=reason))]
            return []  # a re-submission of an action already applied: idempotent by (author, seq)
        early = self.early.setdefault((sender, msg.rid), {})
        if msg.seq > max(last, msg.base) + 1:
            # an earlier action of this author was lost on the way: hold this one, ask again
            first = not early
            if len(early) < MAX_EARLY and self.parked < MAX_EARLY_TOTAL:
                self.parked += msg.seq not in early
                early[msg.seq] = msg
            if first:
                after = max(last, msg.base)
                return [Send(to=sender, message=Resend(term=self.term, rid=msg.rid, after=after))]
            return []
        effects = apply(msg)
        while early:  # actions that overtook a lost one can go now, in order
            following = early.pop(self.last(res, sender) + 1, None)
            if following is None:
                break
            self.parked -= 1
            effects += apply(following)
        settled = self.last(res, sender)
        for seq in [seq for seq in early if seq <= settled]:  # overtaken by a base that skipped them
            del early[seq]
            self.parked -= 1
        if not early:
            self.early.pop((sender, msg.rid), None)
        return effects
