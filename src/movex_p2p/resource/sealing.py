"""Sealing: one peer's side of sealed private halves (pure; see :mod:`.sealed` for the protocol).

The ClientCore owns one. It seals an own half at dispatch (only its commitment leaves), opens
the own halves of a resource to the master once the type's ``can_reveal`` holds on this
replica, and checks a sealed ``Revealed`` entry against this replica before folding it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError
from ..ids import PeerId, Rid, Term
from .effects import Effect, OpeningForged, PrivateLost, Send
from .messages import Revealed
from .overlay import PrivateOverlay
from .pending import Pending, PendingQueue
from .sealed import MAX_BATCH, Outcome, derive_nonce, fold, open_halves, sealed_commitment
from .types import Action, ResourceType
from .values import has_master_values

if TYPE_CHECKING:
    from ..signing import Signer
    from .replica import Replica

__all__ = ["Sealing"]


class Sealing:
    """Own sealed halves of one peer: sealed at dispatch, opened when due, checked at the reveal."""

    def __init__(
        self, me: PeerId, room: str, signer: Signer | None, overlay: PrivateOverlay, queue: PendingQueue
    ) -> None:
        """``overlay`` and ``queue`` are the ClientCore's: where its own halves are (read only)."""
        self.me = me
        self.room = room
        self.signer = signer
        self._overlay = overlay
        self._queue = queue
        self.opened: set[tuple[Rid, int]] = set()
        """Own halves opened to the current master (cleared on a master change: they go again)."""

    def check(self, type_: ResourceType, private: Action) -> None:
        """Refuse, before anything is sent, a private half this peer cannot seal."""
        if self.signer is None:
            raise LocalProtocolError(f"this peer cannot open sealed private halves of {type_.name!r} (no signer)")
        if has_master_values(private.payload):
            raise LocalProtocolError(
                f"{type_.name!r} is sealed: the master never sees a private half, so it cannot resolve mx.master.* "
                "values in one; draw with mx.fair.* (every player contributes, only you see the value) or put "
                "the mx.master.* value in the public half"
            )

    def seal(self, res: Replica, item: Pending, *, fresh: bool = True) -> None:
        """Commit to ``item``'s private half (``fresh=False``: under a new seq, its nonce derived anew)."""
        if item.private is None or not res.type.sealed:
            return
        if not fresh:
            item.nonce = derive_nonce(item.nonce, item.seq)
        item.sealed = sealed_commitment(
            self.room, res.incarnation, self.me, res.rid, item.seq, item.nonce, item.private
        )

    def due(self, res: Replica, master: PeerId | None, term: Term) -> list[Effect]:
        """Open own halves of ``res`` (confirmed, not revealed) to ``master`` if its ``can_reveal`` holds here."""
        signer, can_reveal = self.signer, res.type.can_reveal
        if master is None or signer is None or not res.type.sealed or can_reveal is None:
            return []
        halves = self._overlay.own_halves(res.rid, self._queue.items.get(res.rid, []))
        if not halves:
            return []
        try:
            ready = bool(can_reveal(res.state))
        except Exception:  # the app's code: not due (the master, running it too, says so)
            ready = False
        if not ready:
            return []
        commitments = {h.seq: h.commitment for h in res.held if h.author == self.me}
        opening: list[tuple[int, bytes, bytes, Action]] = []
        for seq, action, nonce in halves:
            commit = commitments.get(seq)
            if commit is not None and (res.rid, seq) not in self.opened:
                self.opened.add((res.rid, seq))
                opening.append((seq, commit, nonce, action))
        return [  # one signature per batch
            Send(to=master, message=open_halves(signer, term=term, rid=res.rid, halves=opening[i : i + MAX_BATCH]))
            for i in range(0, len(opening), MAX_BATCH)
        ]

    def forget(self, rid: Rid) -> None:
        """``rid``'s halves were revealed (or replaced by a snapshot): none is open any more."""
        self.opened = {key for key in self.opened if key[0] != rid}

    @staticmethod
    def broken(msg: Revealed, res: Replica | None) -> str | None:
        """Why a sealed reveal is not the master's to publish (not this replica's held halves, or an
        opening its author never signed), or None. A signed opening that breaks its commitment is
        its author's forgery, found by :meth:`folder`."""
        if res is None or msg.version != res.version + 1:
            return None
        if [(h.author, h.seq) for h in msg.actions] != [(h.author, h.seq) for h in res.held]:
            return f"{msg.rid} v{msg.version}: a reveal of other private halves than the log holds"
        for mine, held in zip(res.held, msg.actions, strict=True):
            if held.commitment != mine.commitment:
                return f"{msg.rid} v{msg.version}: a reveal that changes {held.author}'s commitment {held.seq}"
            if held.action is not None and not held.proof:
                return f"{msg.rid} v{msg.version}: an opening {held.author} never signed (seq {held.seq})"
        return None

    def folder(self, msg: Revealed, outcomes: list[Outcome]) -> Callable[[Replica], Any]:
        """The state after sealed reveal ``msg`` on a replica (what became of each half goes to ``outcomes``)."""

        def compute(replica: Replica) -> Any:
            done = fold(
                replica.type,
                replica.state,
                msg.actions,
                room=self.room,
                incarnation=replica.incarnation,
                rid=replica.rid,
                commitments={(h.author, h.seq): h.commitment for h in replica.held},
                publics={(h.author, h.seq): h.public for h in replica.held},
            )
            outcomes.extend(done.outcomes)
            return done.state

        return compute

    def revealed(self, msg: Revealed, outcomes: list[Outcome], master: PeerId | None) -> list[Effect]:
        """Reveal ``msg`` was applied (sealed: with ``outcomes``): who opened something it had not
        committed to, and which own halves were never revealed."""
        self.forget(msg.rid)
        effects: list[Effect] = [
            OpeningForged(rid=msg.rid, author=held.author, seq=held.seq)
            for held, outcome in zip(msg.actions, outcomes, strict=False)
            if outcome == "forged"
        ]
        lost = tuple(h.seq for h in msg.actions if h.action is None and h.author == self.me)
        if lost:
            effects.append(PrivateLost(rid=msg.rid, seqs=lost, master=master))
        return effects
