"""A peer's identity: an Ed25519 key pair; the peer id is derived from the public key.

``mx.Peer(identity=mx.Identity.load_or_create("alice.key"))`` keeps one identity across
restarts, so a restarted peer is the same peer (the same author; its pending and private
actions still its own). Without one, a peer makes a fresh identity each time it starts.
The id depends on the public key only: a player may change its name and stay the same peer.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .ids import PeerId

__all__ = ["KEY_SIZE", "SIGNATURE_SIZE", "Identity", "peer_id_of", "verify"]

KEY_SIZE: Final = 32
"""Bytes of an Ed25519 private key, public key, and a stored identity file."""
SIGNATURE_SIZE: Final = 64
"""Bytes of an Ed25519 signature."""
_ID_CHARS: Final = 20  # base32 characters of the public key's hash: 100 bits


@functools.lru_cache(maxsize=4096)
def peer_id_of(public_key: bytes) -> PeerId:
    """The peer id that ``public_key`` (32 raw bytes) proves (ValueError for another length)."""
    if type(public_key) is not bytes or len(public_key) != KEY_SIZE:
        raise ValueError(f"an Ed25519 public key has {KEY_SIZE} bytes")
    digest = hashlib.sha256(b"movex-p2p/peer-id\x00" + public_key).digest()
    return PeerId(base64.b32encode(digest).decode().lower()[:_ID_CHARS])


@functools.lru_cache(maxsize=4096)
def _public(public_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key)


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``data`` (False for any malformed part)."""
    try:
        _public(bytes(public_key)).verify(signature, data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


class Identity:
    """An Ed25519 key pair and the peer id it proves."""

    __slots__ = ("_key", "id", "public_key")

    def __init__(self, private_key: bytes) -> None:
        """From 32 raw private-key bytes (see :meth:`generate` and :meth:`load_or_create`)."""
        if len(private_key) != KEY_SIZE:
            raise ValueError(f"an Ed25519 private key has {KEY_SIZE} bytes, not {len(private_key)}")
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self.public_key: bytes = self._key.public_key().public_bytes_raw()
        self.id: PeerId = peer_id_of(self.public_key)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity from the operating system's randomness."""
        return cls(os.urandom(KEY_SIZE))

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Identity:
        """The identity stored at ``path``, created there (readable by this user only) if absent.

        Raises ValueError if the file exists but does not hold an identity.
        """
        file = Path(path)
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            raw = os.urandom(KEY_SIZE)
            file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(raw)
            return cls(raw)
        if len(raw) != KEY_SIZE:
            raise ValueError(f"{file} does not hold a movex_p2p identity ({len(raw)} bytes, expected {KEY_SIZE})")
        return cls(raw)

    def private_bytes(self) -> bytes:
        """The raw private key: keep it secret (``load_or_create`` stores exactly this)."""
        return self._key.private_bytes_raw()

    def sign(self, data: bytes) -> bytes:
        """This identity's Ed25519 signature of ``data`` (64 bytes)."""
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"<Identity {self.id}>"
