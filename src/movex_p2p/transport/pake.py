"""SPAKE2, its symmetric variant, on Ed25519's prime-order group, with libsodium's point arithmetic.

Both sides hold the same password (the room key) and play the same role:

- ``w`` is the password hashed to a scalar; ``S`` is a group element nobody knows the discrete
  logarithm of (libsodium's hash-to-curve of a fixed label);
- each side draws a random scalar ``x`` and sends ``X = x·G + w·S``;
- on the other side's ``Y`` it computes ``K = x·(Y - w·S)``, which is ``x·y·G`` on both sides
  when the passwords match, and unrelated otherwise;
- the session key hashes the label, both messages (sorted, so the roles need no order), ``K`` and
  ``w``.

A side that does not know the password learns nothing it could test a guess against offline:
each exchange is one online guess (the handshake's MACs under the session key tell the sides
apart). Received elements are checked to be valid points of the prime-order subgroup (not of
small order), and a ``K`` that is the identity is refused. libsodium's group operations run in
constant time.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

from nacl._sodium import ffi, lib

__all__ = ["MESSAGE_SIZE", "PakeError", "SymmetricSpake2"]

_POINT: Final = 32
_SCALAR: Final = 32
_SIDE: Final = b"S"
MESSAGE_SIZE: Final = 1 + _POINT
"""Bytes of a message: a side byte (always ``S``: the symmetric variant) and a group element."""


class PakeError(ValueError):
    """The other side's message is unusable (malformed, not a point of the group, or a degenerate key)."""


if lib.sodium_init() < 0:  # 0: initialised now, 1: already
    raise ImportError("libsodium could not be initialised")


def _reduce(wide: bytes) -> bytes:
    """A 64-byte string reduced to a scalar modulo the group order (uniform for a uniform input)."""
    out = ffi.new("unsigned char[]", _SCALAR)
    lib.crypto_core_ed25519_scalar_reduce(out, wide)
    return bytes(ffi.buffer(out, _SCALAR))


def _times(scalar: bytes, point: bytes) -> bytes:
    out = ffi.new("unsigned char[]", _POINT)
    if lib.crypto_scalarmult_ed25519_noclamp(out, scalar, point) != 0:  # the identity, or not a point
        raise PakeError("a degenerate group element")
    return bytes(ffi.buffer(out, _POINT))


def _times_base(scalar: bytes) -> bytes:
    out = ffi.new("unsigned char[]", _POINT)
    if lib.crypto_scalarmult_ed25519_base_noclamp(out, scalar) != 0:
        raise PakeError("a zero scalar")
    return bytes(ffi.buffer(out, _POINT))


def _combine(a: bytes, b: bytes, *, subtract: bool = False) -> bytes:
    out = ffi.new("unsigned char[]", _POINT)
    op = lib.crypto_core_ed25519_sub if subtract else lib.crypto_core_ed25519_add
    if op(out, a, b) != 0:
        raise PakeError("not a group element")
    return bytes(ffi.buffer(out, _POINT))


def _element_of(label: bytes) -> bytes:
    out = ffi.new("unsigned char[]", _POINT)
    lib.crypto_core_ed25519_from_uniform(out, hashlib.sha512(label).digest()[:_POINT])
    return bytes(ffi.buffer(out, _POINT))


_S: Final = _element_of(b"movex-p2p/spake2/symmetric/S")
"""The blinding element: hashed to the curve from a fixed label, so its discrete logarithm is unknown."""


class SymmetricSpake2:
    """One side of one exchange: send :attr:`message`, then :meth:`finish` with the other side's."""

    def __init__(self, password: bytes, *, label: bytes, entropy: bytes | None = None) -> None:
        """``label`` separates protocols; ``entropy`` (64 bytes, tests only) replaces the random scalar."""
        self._label = label
        self._w = _reduce(hashlib.sha512(b"movex-p2p/spake2/w\x00" + label + b"\x00" + password).digest())
        self._ws = _times(self._w, _S)
        self._x = _reduce(os.urandom(64) if entropy is None else entropy)
        self._mine = _combine(_times_base(self._x), self._ws)
        self.message: bytes = _SIDE + self._mine

    def finish(self, theirs: bytes) -> bytes:
        """The 32-byte session key; :class:`PakeError` if ``theirs`` is unusable."""
        if type(theirs) is not bytes or len(theirs) != MESSAGE_SIZE or theirs[:1] != _SIDE:
            raise PakeError(f"a PAKE message is {MESSAGE_SIZE} bytes starting with {_SIDE!r}")
        point = theirs[1:]
        if not lib.crypto_core_ed25519_is_valid_point(point):  # on the curve, in the subgroup, not small order
            raise PakeError("not a point of the group")
        if point == self._mine:
            raise PakeError("our own message reflected")
        shared = _times(self._x, _combine(point, self._ws, subtract=True))
        first, second = sorted((self._mine, point))
        digest = hashlib.sha512()
        for part in (self._label, first, second, shared, self._w):
            digest.update(len(part).to_bytes(4, "big"))
            digest.update(part)
        return digest.digest()[:32]
