"""The seams a core signs and verifies through: a :class:`Signer` and a :class:`Verifier` (pure).

Every peer signs: votes, handover grants, endorsements and seals (docs/security.md). A real
peer's signer is its :class:`~movex_p2p.identity.Identity` (Ed25519) and its verifier
:data:`ED25519`. Deterministic tests that run thousands of elections inject a
:class:`FakeSigner` and :data:`FAKE` instead: the same protocol with a keyed hash in place of
Ed25519, far cheaper, and still refusing a signature made with another fake key or over other
bytes (so a test of forgery keeps its meaning). It is no defence against anyone who reads this
module: never use it on a network.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final, Protocol, final

from .identity import KEY_SIZE, SIGNATURE_SIZE, peer_id_of, verify
from .ids import PeerId

__all__ = [
    "ED25519",
    "FAKE",
    "RECALLED",
    "Ed25519Verifier",
    "FakeSigner",
    "FakeVerifier",
    "RecallingSigner",
    "RecallingVerifier",
    "Signer",
    "Verifier",
]


class Signer(Protocol):
    """Signs for one peer: ``id`` is derived from ``public_key`` (``peer_id_of``)."""

    @property
    def id(self) -> PeerId:
        """The peer id this signer's key proves."""
        ...

    @property
    def public_key(self) -> bytes:
        """The 32-byte public key that travels in proofs."""
        ...

    def sign(self, data: bytes) -> bytes:
        """The 64-byte signature of ``data``."""
        ...


class Verifier(Protocol):
    """Checks signatures; must match the signers of the room (one scheme per room)."""

    def verify(self, public_key: bytes, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` is ``public_key``'s signature of ``data`` (False for any malformed part)."""
        ...

    def __hash__(self) -> int:
        """Verifiers are hashable: verifications are cached per verifier."""
        ...


@final
class Ed25519Verifier:
    """The production verifier: Ed25519 (the signer is an :class:`~movex_p2p.identity.Identity`)."""

    __slots__ = ()

    def verify(self, public_key: bytes, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` is ``public_key``'s Ed25519 signature of ``data``."""
        return verify(public_key, signature, data)

    def __repr__(self) -> str:
        return "ED25519"


ED25519: Final = Ed25519Verifier()
"""The verifier every real peer uses."""

RECALLED: Final = 1024
"""Signatures a :class:`RecallingSigner` remembers (the oldest is forgotten first)."""


@final
class RecallingSigner:
    """A signer that remembers the signatures it made last, for :class:`RecallingVerifier`."""

    __slots__ = ("_signer", "id", "public_key", "recent")

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self.id: PeerId = signer.id
        self.public_key: bytes = signer.public_key
        self.recent: dict[bytes, bytes] = {}
        """Signature -> the bytes it signs, for the last :data:`RECALLED` signatures."""

    def sign(self, data: bytes) -> bytes:
        """The wrapped signer's signature of ``data``, remembered."""
        signature = self._signer.sign(data)
        recent = self.recent
        recent[signature] = data
        if len(recent) > RECALLED:
            del recent[next(iter(recent))]
        return signature

    def __repr__(self) -> str:
        return f"<RecallingSigner {self._signer!r}>"


@final
class RecallingVerifier:
    """A verifier that takes a signature its own peer just made as valid without checking it again.

    A peer's own signatures come back to it (the master relays an author's endorsement to every
    peer, the author included); only the same key over the same bytes matches, anything else is
    checked by the wrapped verifier. Hashed by identity: one per node.
    """

    __slots__ = ("_signer", "_verifier")

    def __init__(self, verifier: Verifier, signer: RecallingSigner) -> None:
        self._verifier = verifier
        self._signer = signer

    def verify(self, public_key: bytes, signature: bytes, data: bytes) -> bool:
        """True if ``signer`` made ``signature`` of ``data`` lately, else the wrapped verifier's verdict."""
        signer = self._signer
        if public_key == signer.public_key and type(signature) is bytes and signer.recent.get(signature) == data:
            return True
        return self._verifier.verify(public_key, signature, data)

    def __repr__(self) -> str:
        return f"<RecallingVerifier {self._verifier!r} {self._signer.id}>"


_FAKE_KEY: Final = b"movex-p2p/fake-key\x00"
_FAKE_SIG: Final = b"mx-fake-sig"  # blake2b personalisation (at most 16 bytes)


def _fake_signature(public_key: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(data, key=public_key, digest_size=SIGNATURE_SIZE, person=_FAKE_SIG).digest()


@final
class FakeVerifier:
    """Verifies :class:`FakeSigner` signatures (tests only: anyone who knows a public key can sign for it)."""

    __slots__ = ()

    def verify(self, public_key: bytes, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` is the fake signature of ``data`` under ``public_key``."""
        if type(public_key) is not bytes or len(public_key) != KEY_SIZE:
            return False
        if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE or type(data) is not bytes:
            return False
        return hmac.compare_digest(_fake_signature(public_key, data), signature)

    def __repr__(self) -> str:
        return "FAKE"


FAKE: Final = FakeVerifier()
"""The verifier of :class:`FakeSigner` signatures."""


@final
class FakeSigner:
    """A deterministic, fast stand-in for an Identity in tests; its signatures pass only :data:`FAKE`."""

    __slots__ = ("id", "public_key")

    def __init__(self, public_key: bytes) -> None:
        """A signer for ``public_key`` (32 bytes; an Identity's key gives the same peer id)."""
        if type(public_key) is not bytes or len(public_key) != KEY_SIZE:
            raise ValueError(f"a public key has {KEY_SIZE} bytes")
        self.public_key: bytes = public_key
        self.id: PeerId = peer_id_of(public_key)

    @classmethod
    def from_seed(cls, seed: int | bytes) -> FakeSigner:
        """The signer derived from ``seed`` (the same seed, the same key and id)."""
        raw = seed if isinstance(seed, bytes) else seed.to_bytes(16, "big", signed=True)
        return cls(hashlib.blake2b(_FAKE_KEY + raw, digest_size=KEY_SIZE).digest())

    def sign(self, data: bytes) -> bytes:
        """The fake signature of ``data`` (64 bytes)."""
        return _fake_signature(self.public_key, data)

    def __repr__(self) -> str:
        return f"<FakeSigner {self.id}>"
