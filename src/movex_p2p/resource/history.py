"""The signed history's digests, commitments and seals (pure; see docs/security.md).

- An action's *digest* binds the room, its author, the term it was proposed in, its resource and
  that resource's incarnation (unique to one creation of the rid), its seq, the action as
  dispatched and the commitment to its private half; an author signs the digests of a frame's
  actions at once (``Endorse``), so every peer can check that an ``Applied`` entry's action is its
  author's, given to this master for this resource in this room (an old signature does not
  fit a re-created rid, another term or another room).
- A *commitment* is BLAKE2b of a random nonce and the private half: published with the public
  half, it binds the author to a private action that only the master sees until the reveal,
  where every peer checks it.
- A *seal* is the master's signature over the heads of the resources a step changed (version,
  checksum, and the digest of applied seqs and held references, or a removal); replicas keep the
  seal of their head, so a new master adopts a replica only as some master of its term signed it.
  The seals of one term form a chain: each names the index of its term's ``Began`` entry, the
  index of the seal before it (``prev``; ``began`` for the first) and that seal's digest
  (``chain``), so a seal covers the log indices ``(prev, index]`` and commits to the whole term
  before it. An honest master's seals of one term cover disjoint, adjacent intervals from one
  ``began``: two seals of one master that break this (:func:`contradicts`) prove a forked history.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import cbor2

from ..election.machine import SALT_BITS, salt_of
from ..ids import PeerId, Rid, Term
from ..proofs import prove, signer, statement
from .messages import Endorse, Endorsed, Head, Held, Propose, Sealed
from .types import Action
from .values import FIRED_KEY, Deadline, MasterValue

if TYPE_CHECKING:
    from ..signing import Signer, Verifier

__all__ = [
    "DIGEST_SIZE",
    "NONCE_SIZE",
    "REMOVED_VERSION",
    "action_body",
    "action_digest",
    "commitment",
    "contradicts",
    "endorsed_digest",
    "endorsement_signer",
    "head",
    "incarnation",
    "meta_digest",
    "proposal_commitment",
    "removed_head",
    "resolves",
    "seal",
    "seal_digest",
    "seal_signer",
    "seal_statement",
]

DIGEST_SIZE: Final = 16
NONCE_SIZE: Final = 16
REMOVED_VERSION: Final = -1
"""The version of a head that records a removal (see :func:`removed_head`)."""
_SALT_MASK: Final = (1 << SALT_BITS) - 1


def _encode_value(encoder: cbor2.CBOREncoder, value: Any) -> None:
    if isinstance(value, MasterValue):
        encoder.encode(["\x00master", value.kind, list(value.args)])
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _encode(action: Action) -> bytes:
    return cbor2.dumps([action.type, action.payload], canonical=True, default=_encode_value)


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def commitment(nonce: bytes, private: Action) -> bytes:
    """The commitment to a private half (with its author's nonce)."""
    return _hash(statement("commit", nonce, _encode(private)))


def action_body(action: Action) -> bytes:
    """``action``'s type and payload as its digest binds them (canonical CBOR: a decoded payload gives the same)."""
    payload = action.payload
    if isinstance(payload, dict | list | tuple | MasterValue):
        return _encode(action)
    return cbor2.dumps([action.type, payload], default=_encode_value)  # small payloads: no canonical sort needed


def action_digest(
    author: str, rid: str, seq: int, action: Action, commit: bytes = b"", *, room: str, term: int, incarnation: bytes
) -> bytes:
    """The digest an author signs for one action (``action`` as dispatched, master values unresolved)."""
    body = action_body(action)
    parts = (
        room.encode(),
        author.encode(),
        term.to_bytes(8, "big", signed=True),
        rid.encode(),
        incarnation,
        seq.to_bytes(8, "big", signed=True),
        body,
        commit,
    )
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE, person=b"movex-action")
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.digest()


def proposal_commitment(msg: Propose) -> bytes:
    """What a proposal's digest binds of its private half: a commitment to the half the master gets, or the
    sealed commitment (b"" for a public action)."""
    return commitment(msg.nonce, msg.private) if msg.private is not None else msg.sealed


def endorsed_digest(author: str, msg: Propose, *, room: str) -> bytes:
    """The digest ``author`` endorses for its proposal ``msg`` in ``room``."""
    commit = proposal_commitment(msg)
    return action_digest(
        author, msg.rid, msg.seq, msg.action, commit, room=room, term=msg.term, incarnation=msg.incarnation
    )


def endorsement_signer(message: Endorse | Endorsed, verifier: Verifier) -> PeerId | None:
    """Who signed an endorsement (None if the proof is not valid)."""
    return signer(message.proof, "endorse", b"".join(message.digests), verifier=verifier)


def meta_digest(applied: Mapping[str, int], held: Iterable[Held], incarnation: bytes = b"") -> bytes:
    """The digest of a replica's applied seqs, held references and incarnation (its head's ``meta``)."""
    body = [
        sorted(applied.items()),
        [[h.author, h.seq, h.commitment, None if h.public is None else _encode(h.public), *_beacon(h)] for h in held],
        incarnation,
    ]
    return _hash(cbor2.dumps(body, canonical=True))


def _beacon(held: Held) -> list[bytes]:
    """A held reference's beacon, in its meta (none: as before beacons were)."""
    return [held.beacon] if held.beacon else []


def head(
    rid: Rid, version: int, checksum: bytes, applied: Mapping[str, int], held: Iterable[Held], incarnation: bytes = b""
) -> Head:
    """The head of a resource."""
    return Head(rid=rid, version=version, checksum=checksum, meta=meta_digest(applied, held, incarnation))


def incarnation(salt: bytes, term: Term, index: int) -> bytes:
    """The incarnation of a resource created at ``index`` of ``term`` by a master with the secret ``salt``."""
    return _hash(statement("incarnation", salt, term, index))


def removed_head(rid: Rid) -> Head:
    """The head a seal carries for a resource removed since the seal before it."""
    return Head(rid=rid, version=REMOVED_VERSION, checksum=b"", meta=b"")


def seal_statement(
    term: Term, index: int, heads: Iterable[Head], *, began: int = 0, prev: int = 0, chain: bytes = b""
) -> tuple[str, int, int, bytes, int, int, bytes]:
    """The parts of a seal's signed statement."""
    body = cbor2.dumps([[h.rid, h.version, h.checksum, h.meta] for h in heads])
    return ("seal", term, index, body, began, prev, chain)


def _statement_of(sealed: Sealed) -> tuple[str, int, int, bytes, int, int, bytes]:
    return seal_statement(
        sealed.term, sealed.index, sealed.heads, began=sealed.began, prev=sealed.prev, chain=sealed.chain
    )


def seal(
    signer_: Signer, term: Term, index: int, heads: Iterable[Head], *, began: int, prev: int, chain: bytes
) -> Sealed:
    """``signer_``'s seal at ``index`` of ``term``, the next link of its chain (see the module docstring)."""
    heads = tuple(heads)
    proof = prove(signer_, *seal_statement(term, index, heads, began=began, prev=prev, chain=chain))
    return Sealed(term=term, index=index, heads=heads, proof=proof, began=began, prev=prev, chain=chain)


@functools.lru_cache(maxsize=1024)  # each seal is the previous one of the next, and checked again by witnesses
def seal_digest(sealed: Sealed) -> bytes:
    """What the next seal of the chain names as its ``chain``."""
    return _hash(statement(*_statement_of(sealed)))


def seal_signer(sealed: Sealed, verifier: Verifier) -> PeerId | None:
    """The master that signed ``sealed``: a valid proof whose key may campaign for ``sealed.term``; else None."""
    if not sealed.began <= sealed.prev < sealed.index:
        return None  # not a link of any chain: it covers no index
    who = signer(sealed.proof, *_statement_of(sealed), verifier=verifier)
    if who is None or salt_of(who) != sealed.term & _SALT_MASK:
        return None
    return who


def contradicts(ours: Sealed, theirs: Sealed) -> str | None:
    """Why two valid seals of one master for one term cannot both be links of one chain, or None.

    Both must have passed :func:`seal_signer` and have one signer; an honest master's seals
    of a term name one ``began`` and cover disjoint, adjacent intervals ``(prev, index]``, each
    naming the digest of the one before it.
    """
    if ours == theirs or ours.term != theirs.term:
        return None
    where = f"of term {ours.term}"
    if ours.began != theirs.began:
        return f"it began term {ours.term} at two indices ({ours.began} and {theirs.began})"
    if ours.index == theirs.index:
        return f"it sealed two different histories at index {ours.index} {where}"
    if ours.prev < theirs.index and theirs.prev < ours.index:
        stretches = f"({ours.prev}, {ours.index}] and ({theirs.prev}, {theirs.index}]"
        return f"it sealed overlapping stretches {stretches} of its log {where}"
    for first, then in ((ours, theirs), (theirs, ours)):
        if then.prev == first.index and then.chain != seal_digest(first):
            return f"its seal at index {then.index} {where} follows another seal at {first.index} than the one it made"
    return None


def resolves(origin: Any, resolved: Any) -> bool:
    """Is ``resolved`` ``origin`` with each master value replaced by a value of its kind (and nothing else changed)?"""
    if isinstance(origin, MasterValue):
        match origin.kind:
            case "now" | "random":
                return type(resolved) is float or type(resolved) is int
            case "random_int":
                return type(resolved) is int and origin.args[0] <= resolved <= origin.args[1]
            case "deadline":
                return Deadline.of(resolved) is not None and FIRED_KEY not in resolved
            case "fair_int":  # the exact value is checked against the draw (resource/draws.py)
                return type(resolved) is int and origin.args[0] <= resolved <= origin.args[1]
            case "fair_choice":
                return any(resolves(item, resolved) for item in origin.args)
            case "fair_shuffle":
                return _permutes(list(origin.args), resolved)
            case _:
                return type(resolved) is str
    if isinstance(origin, list | tuple):
        return (
            isinstance(resolved, list | tuple)
            and len(origin) == len(resolved)
            and all(resolves(a, b) for a, b in zip(origin, resolved, strict=True))
        )
    if isinstance(origin, dict):
        return (
            isinstance(resolved, dict)
            and origin.keys() == resolved.keys()
            and all(resolves(origin[k], resolved[k]) for k in origin)
        )
    return type(origin) is type(resolved) and bool(origin == resolved)


def _permutes(items: list[Any], resolved: Any) -> bool:
    """Is ``resolved`` a list of exactly ``items`` in some order?"""
    if not isinstance(resolved, list | tuple) or len(resolved) != len(items):
        return False
    try:
        mine = sorted(cbor2.dumps(item, canonical=True) for item in resolved)
    except (TypeError, ValueError, cbor2.CBOREncodeError):
        return False
    return mine == sorted(cbor2.dumps(item, canonical=True) for item in items)
