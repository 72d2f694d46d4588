"""The signed history's digests, commitments and seals (pure; see docs/security.md).

- An action's *digest* binds its author, resource, seq, the action as dispatched and the
  commitment to its private half; an author signs the digests of a frame's actions at once
  (``Endorse``), so every peer can check that an ``Applied`` entry's action is its author's.
- A *commitment* is BLAKE2b of a random nonce and the private half: published with the public
  half, it binds the author to a private action that only the master sees until the reveal,
  where every peer checks it.
- A *seal* is the master's signature over the heads of the resources a step changed (version,
  checksum, and the digest of applied seqs and held references); replicas keep the seal of their
  head, so a new master adopts a replica only as some master of its term signed it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import cbor2

from ..election.machine import SALT_BITS, salt_of
from ..ids import PeerId, Rid, Term
from ..proofs import signer, statement
from .messages import Endorse, Endorsed, Head, Held, Sealed
from .types import Action
from .values import FIRED_KEY, Deadline, MasterValue

if TYPE_CHECKING:
    from ..signing import Verifier

__all__ = [
    "DIGEST_SIZE",
    "NONCE_SIZE",
    "action_digest",
    "commitment",
    "endorsement_signer",
    "head",
    "meta_digest",
    "resolves",
    "seal_signer",
    "seal_statement",
]

DIGEST_SIZE: Final = 16
NONCE_SIZE: Final = 16
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


def action_digest(author: str, rid: str, seq: int, action: Action, commit: bytes = b"") -> bytes:
    """The digest an author signs for one action (``action`` as dispatched, master values unresolved)."""
    payload = action.payload
    body = _encode(action) if isinstance(payload, dict | list | tuple | MasterValue) else None
    if body is None:  # the common small payloads: one cbor call, no canonical sort needed
        body = cbor2.dumps([action.type, payload], default=_encode_value)
    parts = (author.encode(), rid.encode(), seq.to_bytes(8, "big", signed=True), body, commit)
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE, person=b"movex-action")
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.digest()


def endorsement_signer(message: Endorse | Endorsed, verifier: Verifier) -> PeerId | None:
    """Who signed an endorsement (None if the proof is not valid)."""
    return signer(message.proof, "endorse", b"".join(message.digests), verifier=verifier)


def meta_digest(applied: Mapping[str, int], held: Iterable[Held], born: tuple[int, int] = (0, 0)) -> bytes:
    """The digest of a replica's applied seqs, held references and incarnation (its head's ``meta``)."""
    body = [
        sorted(applied.items()),
        [[h.author, h.seq, h.commitment, None if h.public is None else _encode(h.public), *_beacon(h)] for h in held],
        list(born),
    ]
    return _hash(cbor2.dumps(body, canonical=True))


def _beacon(held: Held) -> list[bytes]:
    """A held reference's beacon, in its meta (none: as before beacons were)."""
    return [held.beacon] if held.beacon else []


def head(
    rid: Rid,
    version: int,
    checksum: bytes,
    applied: Mapping[str, int],
    held: Iterable[Held],
    born: tuple[int, int] = (0, 0),
) -> Head:
    """The head of a resource."""
    return Head(rid=rid, version=version, checksum=checksum, meta=meta_digest(applied, held, born))


def seal_statement(term: Term, index: int, heads: Iterable[Head]) -> tuple[str, int, int, bytes]:
    """The parts of a seal's signed statement."""
    body = cbor2.dumps([[h.rid, h.version, h.checksum, h.meta] for h in heads])
    return ("seal", term, index, body)


def seal_signer(sealed: Sealed, verifier: Verifier) -> PeerId | None:
    """The master that signed ``sealed``: a valid proof whose key may campaign for ``sealed.term``; else None."""
    who = signer(sealed.proof, *seal_statement(sealed.term, sealed.index, sealed.heads), verifier=verifier)
    if who is None or salt_of(who) != sealed.term & _SALT_MASK:
        return None
    return who


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
