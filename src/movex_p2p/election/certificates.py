"""The signed half of one peer's election: its votes and grants, and the certificates it checked (pure).

A vote is the voter's proof of ``("vote", term, candidate)``, a handover grant the master's proof
of ``("handover", term, successor)`` (:mod:`movex_p2p.proofs`). A certificate is the votes a
master shows in its heartbeats; :class:`Certificates` checks them against the group the machine
sees and remembers, bounded, which terms it found won and by whom.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Final

from ..ids import PeerId, Term
from ..proofs import prove, signer, signer_key

if TYPE_CHECKING:
    from ..signing import Signer, Verifier

__all__ = ["TRUSTED_KEPT", "Certificates"]

TRUSTED_KEPT: Final = 64
"""Certified terms remembered (and masters of terms seen with real votes)."""


class Certificates:
    """Signs this peer's votes and grants, checks the others', and remembers certified terms."""

    def __init__(self, signer: Signer, verifier: Verifier) -> None:
        self._signer = signer
        self._verifier = verifier
        self.won: dict[PeerId, bytes] = {}
        """Candidate or master: the signed votes won in our ballot (late votes join them)."""
        self.trusted: dict[Term, PeerId] = {}
        """Terms whose certificate we checked (or won), and their master."""
        self.seen: dict[Term, PeerId] = {}
        """Terms whose master showed votes of other peers we know."""
        self.known: tuple[Term, PeerId, tuple[bytes, ...]] | None = None
        """The certificate of the master we follow: (term, master, votes)."""
        self.pending: tuple[Term, PeerId, float] | None = None
        """Our latest vote: (term, candidate, when), until its candidate shows a master or it expires."""

    # -- signing --

    def vote(self, term: Term, candidate: PeerId) -> bytes:
        """Our signed vote for ``candidate`` in ``term``."""
        return prove(self._signer, "vote", term, candidate)

    def grant(self, term: Term, successor: PeerId) -> bytes:
        """Our signed handover of ``term`` to ``successor``."""
        return prove(self._signer, "handover", term, successor)

    def proofs(self) -> tuple[bytes, ...]:
        """The votes we won, in a stable order (our certificate)."""
        return tuple(proof for _, proof in sorted(self.won.items()))

    # -- checking --

    def voter(self, proof: bytes, term: Term, candidate: PeerId) -> PeerId | None:
        """Who signed ``proof`` as a vote for ``candidate`` in ``term`` (None: not a valid vote)."""
        return signer(proof, "vote", term, candidate, verifier=self._verifier)

    def granter(self, grant: bytes, term: Term, successor: PeerId) -> PeerId | None:
        """Who signed ``grant`` as a handover of ``term`` to ``successor`` (None: not a valid grant)."""
        return signer(grant, "handover", term, successor, verifier=self._verifier)

    def voters(self, term: Term, master: PeerId, cert: tuple[bytes, ...], allowed: Collection[PeerId]) -> set[PeerId]:
        """The distinct ``allowed`` peers whose valid signed votes for ``master`` in ``term`` ``cert`` holds."""
        voters: set[PeerId] = set()
        for proof in cert[: len(allowed)]:
            claimed = signer_key(proof)
            if claimed is None or claimed in voters or claimed not in allowed:
                continue  # filtered before any signature is checked: bounded work per message
            if self.voter(proof, term, master) == claimed:
                voters.add(claimed)
        if voters - {master} and term not in self.seen:  # others voted for it: it did master that term
            self.seen[term] = master
            if len(self.seen) > TRUSTED_KEPT:
                del self.seen[min(self.seen)]
        return voters

    def trust(self, term: Term, master: PeerId) -> None:
        """``master`` won ``term`` (we checked its votes, or we are it)."""
        self.trusted[term] = master
        if len(self.trusted) > TRUSTED_KEPT:
            del self.trusted[min(self.trusted)]

    def master_of(self, term: Term) -> PeerId | None:
        """The master of ``term`` if we know it: we followed it, or saw it hold votes of peers we know."""
        return self.trusted.get(term) or self.seen.get(term)

    # -- our pending vote --

    def pending_blocks(self, now: float, window: float, asking: PeerId | None = None) -> bool:
        """One vote per candidate until it shows a master for it (or ``window`` seconds pass).

        ``asking``: that candidate asks again for a new ballot; True if it must wait (it had our
        vote less than ``window`` ago and showed no certified master for it).
        """
        pending = self.pending
        if pending is None:
            return False
        term, candidate, at = pending
        if self.trusted.get(term) == candidate:
            self.pending = None
        elif asking == candidate or now - at > window:
            if asking == candidate and now - at <= window:
                return True
            self.pending = None
        return False
