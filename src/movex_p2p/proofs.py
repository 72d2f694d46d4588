"""Signed statements that travel inside messages: a proof is the signer's public key and its signature (pure).

A proof is 96 bytes: the Ed25519 public key (32) then the signature (64) over a labelled,
length-prefixed encoding of the statement's parts. The signer's peer id is derived from the key
(:func:`~movex_p2p.identity.peer_id_of`), so a proof is checked without knowing any key in
advance, and nobody can sign for another peer's id. Used for election votes, handover grants
and the signed history (docs/security.md). Verifications are cached: a certificate heard in
every heartbeat is verified once.
"""

from __future__ import annotations

import functools
from typing import Final

from .identity import KEY_SIZE, SIGNATURE_SIZE, Identity, peer_id_of, verify
from .ids import PeerId

__all__ = ["PROOF_SIZE", "prove", "signer", "signer_key", "statement"]

PROOF_SIZE: Final = KEY_SIZE + SIGNATURE_SIZE
_DOMAIN: Final = b"movex-p2p/proof/v1\x00"
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


def prove(identity: Identity, label: str, *parts: str | int | bytes) -> bytes:
    """``identity``'s proof of the statement (key + signature)."""
    return identity.public_key + identity.sign(statement(label, *parts))


def signer(proof: bytes, label: str, *parts: str | int | bytes) -> PeerId | None:
    """The id of whoever signed ``proof`` over the statement, or None if it is not a valid proof of it."""
    if type(proof) is not bytes or len(proof) != PROOF_SIZE:
        return None
    data = statement(label, *parts)
    valid = _valid(proof, data) if len(data) <= _CACHED else verify(proof[:KEY_SIZE], proof[KEY_SIZE:], data)
    if not valid:
        return None
    return peer_id_of(proof[:KEY_SIZE])


def signer_key(proof: bytes) -> PeerId | None:
    """The id a proof claims to be from (unchecked: cheap, to filter before verifying)."""
    if type(proof) is not bytes or len(proof) != PROOF_SIZE:
        return None
    return peer_id_of(proof[:KEY_SIZE])


@functools.lru_cache(maxsize=4096)
def _valid(proof: bytes, data: bytes) -> bool:
    return verify(proof[:KEY_SIZE], proof[KEY_SIZE:], data)
