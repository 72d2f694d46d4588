"""SignedHistory: the node's signed-history bookkeeping (docs/security.md), pure.

It signs this peer's proposals once per frame (``Endorse``); as master it checks each author's
endorsement before an action reaches the MasterCore and remembers which peer got which author's
``Endorsed``; as a peer it keeps the seals of its master, passes them on (``Witness``) and
compares the others' (:class:`~movex_p2p.resource.seals.SealBook`): two valid seals of one master
that cannot both be links of its term's chain prove a forked history. NodeCore owns one and
routes to it; it sends nothing itself.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Final

from .errors import RemoteProtocolError
from .ids import PeerId, Term
from .proofs import prove, signer_key
from .resource import messages as rm
from .resource.history import endorsed_digest
from .resource.seals import SEALS_KEPT as SEALS_KEPT  # re-exported
from .resource.seals import SealBook

if TYPE_CHECKING:
    from . import wire
    from .signing import Signer

__all__ = ["ENDORSED_KEPT", "SEALS_KEPT", "WITNESS_EVERY", "SignedHistory", "Verdict"]

ENDORSED_KEPT: Final = 4096
"""As master: actions per author whose endorsement is kept until they are applied (the oldest go first)."""
Verdict = tuple[PeerId, str]
"""A master caught forging, and how."""
WITNESS_EVERY: Final = 0.25
"""Seconds between two Witness messages of one peer (its latest seal, to every other peer)."""


class SignedHistory:
    """Endorsements, seals and witnesses of one peer; the verdicts it returns are the node's to act on."""

    def __init__(self, me: PeerId, signer: Signer, room: str = "") -> None:
        """``room``: what every digest binds (an action signed for one room is no action in another)."""
        self.me = me
        self.signer = signer
        self.room = room
        self._endorsements: dict[PeerId, OrderedDict[bytes, rm.Endorsed]] = {}  # master: per author
        self._proofs: OrderedDict[tuple[PeerId, str, int], rm.Endorsed] = OrderedDict()  # master: checked proposals
        self._endorsed_to: dict[PeerId, OrderedDict[bytes, None]] = {}  # master: Endorsed sent per peer (by proof)
        self.seals = SealBook()  # from our master
        self._witness_at = -1e18
        self._distrusted: set[PeerId] = set()

    def endorsed(self, sender: PeerId, message: rm.ToMaster) -> bool:
        """As master: check an Endorse, or that a Propose is endorsed; False drops it (raises for a forgery)."""
        if type(message) is rm.Endorse:
            if sender == self.me:
                return False  # not ours to check: we wrote it
            endorsed = rm.Endorsed(term=message.term, author=sender, digests=message.digests, proof=message.proof)
            book = self._endorsements.setdefault(sender, OrderedDict())
            for digest in message.digests:
                book[digest] = endorsed
            while len(book) > ENDORSED_KEPT:
                book.popitem(last=False)
            return False
        if type(message) is not rm.Propose:
            return True
        if sender == self.me:
            return True  # the master's own actions: it is their author, its entries say so
        digest = self._digest(sender, message)
        known = self._endorsements.get(sender)
        proof = None if known is None else known.get(digest)
        if proof is None:
            raise RemoteProtocolError(f"{message.rid} seq {message.seq}: an action its author did not sign")
        self._proofs[(sender, message.rid, message.seq)] = proof
        while len(self._proofs) > ENDORSED_KEPT * 4:
            self._proofs.popitem(last=False)
        return True

    def endorsement_for(self, message: rm.ToClients, peers: frozenset[PeerId]) -> list[tuple[PeerId, rm.Endorsed]]:
        """As master, before an author's Applied reaches the peers: the Endorsed each must get first."""
        if type(message) is not rm.Applied:
            return []
        endorsed = self._proofs.pop((message.author, message.rid, message.seq), None)
        if endorsed is None:
            return []  # our own (we are their author), or applied from a sealed replica
        return [(peer, endorsed) for peer in peers if self._mark_sent(peer, endorsed)]

    def _mark_sent(self, peer: PeerId, endorsed: rm.Endorsed) -> bool:
        """Record that ``peer`` gets ``endorsed`` now; False if it got it already."""
        sent = self._endorsed_to.setdefault(peer, OrderedDict())
        if endorsed.proof in sent:
            return False
        sent[endorsed.proof] = None
        if len(sent) > ENDORSED_KEPT:
            sent.popitem(last=False)
        return True

    def endorse(self, messages: list[wire.Message] | None, term: Term) -> None:
        """Sign the proposals in ``messages`` (leaving for our master in this frame): one Endorse ahead of them."""
        if not messages:
            return
        proposals = [(i, m) for i, m in enumerate(messages) if type(m) is rm.Propose]
        if not proposals:
            return
        digests = tuple(self._digest(self.me, m) for _, m in proposals)
        proof = prove(self.signer, "endorse", b"".join(digests))
        messages.insert(proposals[0][0], rm.Endorse(term=term, digests=digests, proof=proof))

    def keep_seal(
        self, sender: PeerId, message: rm.Sealed | rm.Removed, master: PeerId | None, term: Term
    ) -> Verdict | None:
        """A seal from ``sender``: if it is our master's of its ``term``, remember it (and pass it on);
        (master, why) if it contradicts a seal that master sent us before. A ``Removed`` told again
        carries the seal that recorded it (maybe an earlier master's): compared and passed on only."""
        if sender != master or sender == self.me:
            return None
        if type(message) is rm.Removed:
            sealed = message.seal
            why = None if sealed is None else self.seals.keep_old(sealed)
            signed = None if sealed is None else signer_key(sealed.proof)
            return None if why is None or signed is None else (signed, why)
        assert type(message) is rm.Sealed
        why = None if message.term != term else self.seals.keep(message)
        return None if why is None else (sender, why)

    def witness(self, now: float) -> list[rm.Witness]:
        """The Witnesses to send to every peer but our master now (the seals to pass on at once, and
        the latest one at most every WITNESS_EVERY seconds)."""
        due = self.seals.has_latest and now >= self._witness_at + WITNESS_EVERY
        if due:
            self._witness_at = now
        return [rm.Witness(term=sealed.term, sealed=sealed) for sealed in self.seals.to_pass_on(due)]

    def forked(self, sender: PeerId, witness: rm.Witness) -> Verdict | None:
        """Another peer's seal: (master, why) if it and one of ours prove that master forked."""
        why = self.seals.compare(sender, witness.sealed)
        master = signer_key(witness.sealed.proof)  # the verify stage checked its signature
        return None if why is None or master is None else (master, why)

    def distrusts(self, peer: PeerId) -> bool:
        """Was ``peer`` caught forging (never followed again)?"""
        return peer in self._distrusted

    def distrust(self, peer: PeerId) -> bool:
        """Never follow ``peer`` again; True the first time (False for ourselves)."""
        if peer in self._distrusted or peer == self.me:
            return False
        self._distrusted.add(peer)
        return True

    def _digest(self, author: PeerId, proposal: rm.Propose) -> bytes:
        """The digest ``author`` signs for ``proposal`` (see ``resource.history``)."""
        return endorsed_digest(author, proposal, room=self.room)

    def link_up(self, peer: PeerId) -> None:
        """What went over an earlier link to ``peer`` may be lost: its Endorsed go again."""
        self._endorsed_to.pop(peer, None)

    def link_down(self, peer: PeerId) -> None:
        self.seals.forget(peer)
        self._endorsed_to.pop(peer, None)
        self._endorsements.pop(peer, None)
