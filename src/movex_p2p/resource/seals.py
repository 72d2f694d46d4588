"""SealBook: the seals a peer got from its master, compared with each other and with other peers' (pure).

The seals of one term are a chain (``history``): each covers the log indices ``(prev, index]``
after its term's ``Began`` and names the digest of the seal before it. A peer keeps its master's
latest seals and checks each new one against them and every seal another peer passes on
(``Witness``) against them: two seals of one master that cannot both be links of one chain
(:func:`~.history.contradicts`) prove it told peers different histories, whatever indices it
gave each. So that the pair meets:

- a seal that does not continue the one before it (a jump in the indices, a first seal, a
  removal's seal sent again) is passed on at once, not only the latest every ``WITNESS_EVERY``;
- another peer's seal that is ahead of ours is kept and checked once ours get there;
- when a pair proves a fork, our seal of the pair is passed on, so the other peer proves it too.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from ..ids import Rid, Term
from ..proofs import signer_key
from .history import contradicts, seal, seal_digest
from .messages import Head, Sealed

if TYPE_CHECKING:
    from ..signing import Signer

__all__ = ["AHEAD_KEPT", "REMOVALS_KEPT", "SEALS_KEPT", "URGENT_KEPT", "SealBook", "SealChain"]

SEALS_KEPT: Final = 512
"""Seals of our master remembered to compare with what other peers got."""
AHEAD_KEPT: Final = 8
"""Seals of our master ahead of ours kept per peer that passed them on, until ours catch up (the oldest go first)."""
URGENT_KEPT: Final = 16
"""Seals waiting to be passed on at once (the oldest go first)."""
REMOVALS_KEPT: Final = 4096
"""As master: the seals of this many removals remembered (as many as tombstones)."""


class SealChain:
    """A master's seals of its term: each the next link of the chain (see ``history``)."""

    def __init__(self, signer: Signer, term: Term, removals: Mapping[Rid, Sealed]) -> None:
        """``removals``: the seals that recorded the removals this master remembers (a removal told
        again carries its seal)."""
        self._signer = signer
        self._term = term
        self.sealed_at = 0
        """The index of the last seal of the term (0: none yet)."""
        self._chain = b""  # its digest, which the next seal names
        self.removals: dict[Rid, Sealed] = dict(removals)

    def next(self, index: int, began: int, heads: list[Head]) -> Sealed:
        """The seal of ``heads`` at ``index`` (past the last one) of the term begun at ``began``."""
        assert index > self.sealed_at, "two seals past one index"
        prev = max(self.sealed_at, began)
        sealed = seal(self._signer, self._term, index, heads, began=began, prev=prev, chain=self._chain)
        self.sealed_at, self._chain = index, seal_digest(sealed)
        return sealed

    def removed(self, rid: Rid, sealed: Sealed) -> None:
        """``sealed`` recorded the removal of ``rid``."""
        self.removals[rid] = sealed
        while len(self.removals) > REMOVALS_KEPT:
            del self.removals[next(iter(self.removals))]


class SealBook:
    """Our master's seals, the checks of each seal against them, and which seals to pass on."""

    def __init__(self) -> None:
        self._seals: OrderedDict[tuple[int, int], Sealed] = OrderedDict()  # (term, index) -> seal
        self._ends: dict[int, list[int]] = {}  # per term: the indices of the seals kept, sorted
        self._last: Sealed | None = None  # the latest seal of our master's chain
        self._latest: Sealed | None = None  # the latest not yet passed on
        self._urgent: OrderedDict[bytes, Sealed] = OrderedDict()  # by proof
        self._ahead: dict[str, OrderedDict[bytes, Sealed]] = {}  # per peer: our master's seals ahead of ours

    def keep(self, sealed: Sealed) -> str | None:
        """A seal from our master: remember it; why it contradicts one it sent before (a fork), or None."""
        last = self._last
        continues = (
            last is not None
            and last.term == sealed.term
            and sealed.prev == last.index
            and sealed.chain == seal_digest(last)
        )
        verdict = self._against_ours(sealed)
        self._store(sealed)
        self._last = self._latest = sealed
        if not continues:
            self._pass_on(sealed)
        if verdict is not None:
            return verdict[0]
        return self._caught_up(sealed)

    def keep_old(self, sealed: Sealed) -> str | None:
        """A seal our master sent again with an older entry (a removal): check it and pass it on, nothing else."""
        verdict = self._against_ours(sealed)
        self._pass_on(sealed)
        return None if verdict is None else verdict[0]

    def compare(self, sender: str, theirs: Sealed) -> str | None:
        """A seal ``sender`` passed on: why it and one of ours prove a fork, or None (kept if it is
        our master's and ahead of ours)."""
        verdict = self._against_ours(theirs)
        if verdict is not None:
            self._pass_on(verdict[1])  # the other peer may not hold our half of the pair
            return verdict[0]
        last = self._last
        if self._ahead_of_ours(theirs) and (last is None or signer_key(last.proof) == signer_key(theirs.proof)):
            kept = self._ahead.setdefault(sender, OrderedDict())
            kept[theirs.proof] = theirs
            kept.move_to_end(theirs.proof)
            while len(kept) > AHEAD_KEPT:
                kept.popitem(last=False)
        return None

    def forget(self, peer: str) -> None:
        """``peer``'s link went down: the seals it passed on and we kept go."""
        self._ahead.pop(peer, None)

    def to_pass_on(self, due: bool) -> list[Sealed]:
        """The seals to pass on now: those waiting to go at once, and the latest if ``due``."""
        out = list(self._urgent.values())
        self._urgent.clear()
        latest = self._latest
        if due and latest is not None:
            self._latest = None
            if latest not in out:
                out.append(latest)
        return out

    @property
    def has_latest(self) -> bool:
        """True when a seal waits for the next regular pass."""
        return self._latest is not None

    def _store(self, sealed: Sealed) -> None:
        key = (sealed.term, sealed.index)
        if key not in self._seals:
            bisect.insort(self._ends.setdefault(sealed.term, []), sealed.index)
        self._seals[key] = sealed
        while len(self._seals) > SEALS_KEPT:
            (term, index), _ = self._seals.popitem(last=False)
            ends = self._ends[term]
            ends.remove(index)  # the oldest: at the front
            if not ends:
                del self._ends[term]

    def _pass_on(self, sealed: Sealed) -> None:
        self._urgent[sealed.proof] = sealed
        while len(self._urgent) > URGENT_KEPT:
            self._urgent.popitem(last=False)

    def _against_ours(self, theirs: Sealed) -> tuple[str, Sealed] | None:
        """(why, which of ours) if ``theirs`` and one of our master's seals cannot both be honest."""
        master = signer_key(theirs.proof)
        for ours in self._neighbours(theirs):
            if signer_key(ours.proof) != master:
                continue  # another master's seal proves nothing about ours
            why = contradicts(ours, theirs)
            if why is not None:
                return why, ours
        return None

    def _neighbours(self, theirs: Sealed) -> list[Sealed]:
        """The few of our seals that ``theirs`` may contradict: the last of its term (another ``Began``?),
        the one at its index or the first past its ``prev`` (overlapping?), the one at its ``prev``
        and the one after its index (adjacent?). Ours cover disjoint stretches, so no other one can."""
        ends = self._ends.get(theirs.term)
        if not ends:
            return []
        term, seals = theirs.term, self._seals
        first_after = bisect.bisect_right(ends, theirs.prev)
        after = bisect.bisect_right(ends, theirs.index)
        keys = {ends[-1], theirs.prev}
        keys.update(ends[i] for i in (first_after, after) if i < len(ends))
        return [seals[(term, i)] for i in sorted(keys) if (term, i) in seals]

    def _ahead_of_ours(self, theirs: Sealed) -> bool:
        last = self._last
        return last is None or last.term < theirs.term or (last.term == theirs.term and last.index < theirs.index)

    def _caught_up(self, sealed: Sealed) -> str | None:
        """Check our new seal against the seals kept ahead of ours, and those it reached against all of ours."""
        master = signer_key(sealed.proof)
        for kept in self._ahead.values():
            for proof, theirs in list(kept.items()):
                why = None
                if theirs.term == sealed.term and _related(sealed, theirs) and signer_key(theirs.proof) == master:
                    why = contradicts(sealed, theirs)
                if why is not None:
                    self._pass_on(sealed)
                    return why
                if self._ahead_of_ours(theirs):
                    continue
                del kept[proof]
                verdict = self._against_ours(theirs)
                if verdict is not None:
                    self._pass_on(verdict[1])
                    return verdict[0]
        return None


def _related(ours: Sealed, theirs: Sealed) -> bool:
    """Could the two seals contradict (a cheap filter before :func:`~.history.contradicts`)?"""
    return (
        ours.began != theirs.began
        or (ours.prev < theirs.index and theirs.prev < ours.index)
        or ours.index == theirs.prev
        or theirs.index == ours.prev
    )
