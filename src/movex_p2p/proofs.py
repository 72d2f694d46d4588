"""Signed statements that travel inside messages: a proof is the signer's public key and its signature (pure).

A proof is 96 bytes: the signer's public key (32) then its signature (64) over a labelled,
length-prefixed encoding of the statement's parts. The signer's peer id is derived from the key
(:func:`~movex_p2p.identity.peer_id_of`), so a proof is checked without knowing any key in
advance, and nobody can sign for another peer's id. Used for election votes, handover grants
and the signed history (docs/security.md). Verifications are cached: a certificate heard in
every heartbeat is verified once. The signer and verifier are injected (:mod:`movex_p2p.signing`):
Ed25519 on every real peer.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

from .identity import KEY_SIZE, SIGNATURE_SIZE, peer_id_of
from .ids import PeerId

if TYPE_CHECKING:
    from .signing import Signer, Verifier

__all__ = ["PROOF_SIZE", "prove", "signer", "signer_key", "statement"]

PROOF_SIZE: Final = KEY_SIZE + SIGNATURE_SIZE
_DOMAIN: Final = b"movex-p2p/proof/v2\x00"
_CACHED: Final = 4096
"""Statements up to this many bytes have their verification cached (the cache stays small)."""


def statement(label: str, *parts: str | int | bytes) -> bytes:
    """The bytes a proof signs: a domain, the label and each part, length-prefixed (unambiguous)."""
    out = bytearray(_DOMAIN)
    for part in (label, *parts):
        if isinstance(part, str):
            raw = b"s" + part.encode()
        elif isinstance(part, bool):
            raw = b"b" + bytes((part,))
        elif isinstance(part, int):
            raw = b"i" + part.to_bytes(17, "big", signed=True)
        else:
            raw = b"y" + bytes(part)
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def prove(signer: Signer, label: str, *parts: str | int | bytes) -> bytes:
    """``signer``'s proof of the statement (key + signature)."""
    return signer.public_key + signer.sign(statement(label, *parts))


def signer(proof: bytes, label: str, *parts: str | int | bytes, verifier: Verifier) -> PeerId | None:
    """The id of whoever signed ``proof`` over the statement, or None if it is not a valid proof of it."""
    if type(proof) is not bytes or len(proof) != PROOF_SIZE:
        return None
    data = statement(label, *parts)
    if len(data) <= _CACHED:
        valid = _valid(verifier, proof, data)
    else:
        valid = verifier.verify(proof[:KEY_SIZE], proof[KEY_SIZE:], data)
    if not valid:
        return None
    return peer_id_of(proof[:KEY_SIZE])


def signer_key(proof: bytes) -> PeerId | None:
    """The id a proof claims to be from (unchecked: cheap, to filter before verifying)."""
    if type(proof) is not bytes or len(proof) != PROOF_SIZE:
        return None
    return peer_id_of(proof[:KEY_SIZE])


@functools.lru_cache(maxsize=4096)
def _valid(verifier: Verifier, proof: bytes, data: bytes) -> bool:
    return verifier.verify(proof[:KEY_SIZE], proof[KEY_SIZE:], data)
