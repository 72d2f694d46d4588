"""Fast seeded signers for deterministic tests (the production protocol with a fake signature)."""

from __future__ import annotations

from movex_p2p.election.machine import SALT_BITS, salt_of
from movex_p2p.ids import PeerId, Term
from movex_p2p.proofs import prove
from movex_p2p.signing import FakeSigner, Signer


def fake_signers(count: int, seed: int = 0) -> list[FakeSigner]:
    """``count`` fake signers sorted by id: the first has the lowest id (as ``a`` < ``b`` < ``c``)."""
    return sorted((FakeSigner.from_seed(seed << 16 | i) for i in range(count)), key=lambda s: s.id)


def term_of(round_: int, owner: PeerId) -> Term:
    """Round ``round_`` of the term only ``owner`` may campaign for."""
    return Term(round_ << SALT_BITS | salt_of(owner))


def vote(voter: Signer, term: Term, candidate: PeerId) -> bytes:
    """``voter``'s signed vote for ``candidate`` in ``term``."""
    return prove(voter, "vote", term, candidate)
