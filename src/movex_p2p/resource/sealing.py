"""Sealing: one peer's side of sealed private halves (pure; see :mod:`.sealed` for the protocol).

The ClientCore owns one. It seals an own half at dispatch (only its commitment leaves), opens
the own halves of a resource to the master once the type's ``can_reveal`` holds on this
replica, and checks a sealed ``Revealed`` entry against this replica before folding it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..errors import LocalProtocolError
from ..ids import PeerId, Rid, Term
from .effects import Effect, OpeningForged, PrivateLost, Send
from .fair import draw_sealed
from .messages import Applied, Held, Revealed, Snapshot
from .overlay import PrivateOverlay
from .pending import Pending, PendingQueue
from .sealed import MAX_BATCH, Outcome, derive_nonce, fold, open_halves, sealed_commitment
from .types import Action, ResourceType
from .values import has_fair_values, has_unfair_values

if TYPE_CHECKING:
    from ..signing import Signer
    from .replica import Replica

__all__ = ["BEACONS_KEPT", "Sealing"]

BEACONS_KEPT: Final = 16_384
"""Beacons of private draws this peer checked, kept to hold a snapshot to them (the oldest forgotten first)."""


class Sealing:
    """Own sealed halves of one peer: sealed at dispatch, opened when due, checked at the reveal."""

    def __init__(self, me: PeerId, room: str, signer: Signer, overlay: PrivateOverlay, queue: PendingQueue) -> None:
        """``overlay`` and ``queue`` are the ClientCore's: where its own halves are (read only)."""
        self.me = me
        self.room = room
        self.signer = signer
        self._overlay = overlay
        self._queue = queue
        self.opened: set[tuple[Rid, int]] = set()
        """Own halves opened to the current master (cleared on a master change: they go again)."""
        self.beacons: OrderedDict[tuple[Rid, bytes, PeerId, int], tuple[Term, bytes]] = OrderedDict()
        """The beacon this peer checked for each sealed pair (rid, incarnation, author, seq), and its term."""

    def check(self, type_: ResourceType, private: Action) -> None:
        """Refuse, before anything is sent, a private half this peer cannot seal."""
        if has_unfair_values(private.payload):
            raise LocalProtocolError(
                f"{type_.name!r} is sealed: the master never sees a private half, so it cannot resolve mx.master.* "
                "values in one; draw with mx.fair.* (every player contributes, only you see the value) or put "
                "the mx.master.* value in the public half"
            )

    def confirmed(self, msg: Applied, res: Replica, public: Action, seed: bytes | None) -> Held:
        """A private pair's ``Applied`` (``public`` its half), ``seed`` the draw just before it for that pair (if
        any): the held reference, with the beacon of a sealed pair; an own half's private draws are read now
        (its author sees its values)."""
        beacon = seed if seed is not None and res.type.sealed else b""
        if beacon:
            self.beacons[(res.rid, res.incarnation, msg.author, msg.seq)] = (msg.term, beacon)
            while len(self.beacons) > BEACONS_KEPT:
                self.beacons.popitem(last=False)
        if beacon and msg.author == self.me:
            for item in self._queue.items.get(res.rid, ()):
                if item.seq == msg.seq and item.private is not None and has_fair_values(item.private.payload):
                    payload = draw_sealed(
                        item.private.payload, item.nonce, beacon, author=self.me, rid=res.rid, seq=item.seq
                    )
                    item.origin, item.private = item.private, Action(item.private.type, payload).by(self.me)
                    item.waits = False
        return Held(author=msg.author, seq=msg.seq, commitment=msg.commitment, public=public, beacon=beacon)

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
        can_reveal = res.type.can_reveal
        if master is None or not res.type.sealed or can_reveal is None:
            return []
        halves = self._overlay.own_halves(res.rid, self._queue.items.get(res.rid, []))
        if not halves:
            return []
        try:
            ready = bool(can_reveal(res.state))
        except Exception:  # only the app's hook is under this catch: not due (the master, running it too, reports it)
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
            Send(to=master, message=open_halves(self.signer, term=term, rid=res.rid, halves=opening[i : i + MAX_BATCH]))
            for i in range(0, len(opening), MAX_BATCH)
        ]

    def swapped(self, msg: Snapshot) -> str | None:
        """Why ``msg`` is a forgery of its master: it holds a sealed pair with another beacon than the one
        this peer checked under that same master (an author would see other values at the reveal than at
        its confirmation). A later master's snapshot may hold a pair drawn again after a split: not checked."""
        for h in msg.held:
            known = self.beacons.get((msg.rid, msg.incarnation, h.author, h.seq))
            if known is not None and known[0] == msg.term and known[1] != h.beacon:
                return f"a snapshot of {msg.rid} holds another beacon for {h.author}'s seq {h.seq} than its draw"
        return None

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
                beacons={(h.author, h.seq): h.beacon for h in replica.held},
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
        undrawn = {h.seq for h, o in zip(msg.actions, outcomes, strict=False) if o == "undrawn"}  # no beacon
        lost = tuple(h.seq for h in msg.actions if h.author == self.me and (h.action is None or h.seq in undrawn))
        if lost:
            effects.append(PrivateLost(rid=msg.rid, seqs=lost, master=master))
        return effects
