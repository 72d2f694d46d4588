"""Sealed private halves: commitments the master cannot read, the authors' openings, the reveal (pure).

With ``ResourceType(private="sealed")`` the author of a private/public pair keeps the private
half: its ``Propose`` carries only :func:`sealed_commitment` (BLAKE2b of the room, the resource's
incarnation, the author, the rid, the seq, a fresh random nonce and the half), so the master
orders a commitment it cannot read. When ``can_reveal`` holds on the author's replica, the author
*opens* its halves (:class:`~.messages.Open`: each half and its nonce, and one signature of the
author over the batch, :func:`batch_statement`); the master puts the openings it got in
the ``Revealed`` entry and every peer runs :func:`fold` on it: an opening that matches its
commitment runs through the reducer, in log order; one that does not is *forged* by its author
(its signature proves the author sent it), and like a half never opened it goes to the type's
``on_unrevealed``. See docs/security.md ("Sealed private actions").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from ..ids import PeerId, Rid, Term
from ..proofs import prove, signer
from .history import DIGEST_SIZE, NONCE_SIZE
from .history import _encode as encode_action
from .messages import Held, Open
from .types import Action, ResourceType, Unrevealed

if TYPE_CHECKING:
    from ..signing import Signer, Verifier

__all__ = [
    "MAX_BATCH",
    "Outcome",
    "Revealing",
    "batch_statement",
    "derive_nonce",
    "fold",
    "half_digest",
    "open_batch",
    "open_halves",
    "opening_signer",
    "sealed_commitment",
]

_PERSON: Final = b"movex-sealed"

MAX_BATCH: Final = 128
"""Openings one signature covers at most (an author with more opens them in several batches)."""

Outcome = Literal["revealed", "lost", "forged", "refused"]
"""What became of one sealed half at the reveal: run by the reducer; never opened (or its author
gone); opened with something that is not what it committed to; opened, but the reducer refused it."""


def sealed_commitment(
    room: str, incarnation: bytes, author: str, rid: str, seq: int, nonce: bytes, private: Action
) -> bytes:
    """The commitment to a sealed private half: binds the room, the resource's incarnation
    (``incarnation``: unique to its ``Created``), the author, the rid, the seq and the half,
    hidden by ``nonce`` (random, :data:`~.history.NONCE_SIZE` bytes)."""
    parts = (
        room.encode(),
        incarnation,
        author.encode(),
        rid.encode(),
        seq.to_bytes(8, "big", signed=True),
        nonce,
        encode_action(private),
    )
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE, person=_PERSON)
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.digest()


def derive_nonce(nonce: bytes, seq: int) -> bytes:
    """A fresh nonce for a half sealed again under a new seq (a rebase), from its secret old one."""
    return hashlib.blake2b(nonce + seq.to_bytes(8, "big", signed=True), digest_size=NONCE_SIZE, person=_PERSON).digest()


def half_digest(seq: int, commitment: bytes, nonce: bytes, action: Action) -> bytes:
    """The digest of one opening (what a batch signature covers)."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE, person=b"movex-opening")
    for part in (seq.to_bytes(8, "big", signed=True), commitment, nonce, encode_action(action)):
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.digest()


def batch_statement(rid: str, batch: bytes) -> tuple[str, str, bytes]:
    """The statement an author signs to open the halves of ``rid`` whose digests ``batch`` joins."""
    return ("open", rid, batch)


def open_halves(signer_: Signer, *, term: Term, rid: Rid, halves: Iterable[tuple[int, bytes, bytes, Action]]) -> Open:
    """The author's signed opening of its sealed halves: (seq, commitment, nonce, half) each, one signature."""
    opened = tuple(
        Held(author=signer_.id, seq=seq, commitment=commit, nonce=nonce, action=Action(action.type, action.payload))
        for seq, commit, nonce, action in halves
    )
    batch = b"".join(half_digest(h.seq, h.commitment, h.nonce, h.action) for h in opened if h.action is not None)
    return Open(term=term, rid=rid, halves=opened, proof=prove(signer_, *batch_statement(rid, batch)))


def open_batch(msg: Open) -> bytes:
    """The digests of an Open's halves, joined (what its proof signs)."""
    return b"".join(half_digest(h.seq, h.commitment, h.nonce, h.action) for h in msg.halves if h.action is not None)


def opening_signer(rid: str, opened: Held | Open, verifier: Verifier) -> PeerId | None:
    """Who signed ``opened``: an Open, or one opening a Revealed entry carries (whose digest must be
    in its batch); None if the proof is not valid or does not cover it."""
    if isinstance(opened, Open):
        if len(opened.halves) > MAX_BATCH or any(h.action is None for h in opened.halves):
            return None
        batch = open_batch(opened)
    else:
        action = opened.action
        if action is None or not opened.proof or len(opened.batch) > MAX_BATCH * DIGEST_SIZE:
            return None
        batch = opened.batch
        own = half_digest(opened.seq, opened.commitment, opened.nonce, action)
        if not any(batch[i : i + DIGEST_SIZE] == own for i in range(0, len(batch), DIGEST_SIZE)):
            return None
    return signer(opened.proof, *batch_statement(rid, batch), verifier=verifier)


@dataclass(slots=True)
class Revealing:
    """A reveal of sealed halves folded onto a state: the state, and what became of each half."""

    state: Any
    outcomes: list[Outcome]
    errors: list[tuple[str, str]]
    """(where, error) for each app hook that raised (``on_unrevealed``, the reducer)."""


def fold(
    type_: ResourceType,
    state: Any,
    halves: Iterable[Held],
    *,
    room: str,
    incarnation: bytes,
    rid: str,
    commitments: Mapping[tuple[PeerId, int], bytes],
    publics: Mapping[tuple[PeerId, int], Action | None],
) -> Revealing:
    """``state`` after the sealed ``halves`` of a reveal, in order; the same on every peer.

    ``commitments`` and ``publics`` are this replica's own record of each pair (author, seq):
    a half is checked against the commitment this peer saw published, never the master's word.
    """
    outcomes: list[Outcome] = []
    errors: list[tuple[str, str]] = []
    for held in halves:
        key = (held.author, held.seq)
        action = held.action
        outcome: Outcome
        if action is None:
            outcome = "lost"
        elif sealed_commitment(room, incarnation, held.author, rid, held.seq, held.nonce, action) != commitments.get(
            key
        ):
            outcome = "forged"
        else:
            try:
                state = type_.reduce(state, action.by(held.author))
                outcome = "revealed"
            except Exception as exc:  # the app's reducer refused the half its author committed to
                outcome = "refused"
                errors.append(("the reducer revealing a sealed private action", _reason(exc)))
        outcomes.append(outcome)
        if outcome != "revealed":
            lost = Unrevealed(held.author, held.seq, publics.get(key, held.public))
            state, error = type_.unrevealed(state, lost)
            if error is not None:
                errors.append(("on_unrevealed", error))
    return Revealing(state=state, outcomes=outcomes, errors=errors)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
