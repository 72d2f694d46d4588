"""A peer's identity: an Ed25519 key pair; the peer id is derived from the public key.

``mx.Peer(identity=mx.Identity.load_or_create("alice.key"))`` keeps one identity across
restarts, so a restarted peer is the same peer (the same author; its pending and private
actions still its own). Without one, a peer makes a fresh identity each time it starts.
The id depends on the public key only: a player may change its name and stay the same peer.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import hashlib
import hmac
import os
import stat
import warnings
from pathlib import Path
from typing import Final

# libsodium itself, as PyNaCl builds it: nacl.bindings would import every wrapper it has (~0.7 MB
# of a peer's RSS) for the three functions below. pyproject pins PyNaCl below 2; tests/test_signing.py
# checks the functions against RFC 8032's vectors and cryptography's Ed25519.
from nacl._sodium import ffi, lib

from .errors import IdentityFileError, InsecureIdentityFile
from .ids import PeerId

__all__ = ["KEY_SIZE", "SIGNATURE_SIZE", "Identity", "peer_id_of", "verify"]

KEY_SIZE: Final = 32
"""Bytes of an Ed25519 private key and public key."""
SIGNATURE_SIZE: Final = 64
"""Bytes of an Ed25519 signature."""
_ID_CHARS: Final = 20  # base32 characters of the public key's hash: 100 bits

# An identity file: this header, the 32 private-key bytes, then the first 16 bytes of the
# SHA-256 of header and key. A flipped bit, a truncation or another file never loads as a key.
_MAGIC: Final = b"movex-p2p identity 1\n"
_CHECK_SIZE: Final = 16
_FILE_SIZE: Final = len(_MAGIC) + KEY_SIZE + _CHECK_SIZE


def _checksum(key: bytes) -> bytes:
    return hashlib.sha256(_MAGIC + key).digest()[:_CHECK_SIZE]


def _encode(key: bytes) -> bytes:
    return _MAGIC + key + _checksum(key)


def _decode(file: Path, raw: bytes) -> bytes:
    """The private key in an identity file's bytes (IdentityFileError if they are not intact)."""
    if not raw.startswith(_MAGIC):
        raise IdentityFileError(f"{file} does not hold a movex_p2p identity (no identity header)")
    if len(raw) != _FILE_SIZE:
        raise IdentityFileError(
            f"{file} is a damaged movex_p2p identity ({len(raw)} bytes, expected {_FILE_SIZE}): "
            f"restore it from a backup, or delete it to start as a new peer"
        )
    key = raw[len(_MAGIC) : len(_MAGIC) + KEY_SIZE]
    if not hmac.compare_digest(raw[len(_MAGIC) + KEY_SIZE :], _checksum(key)):
        raise IdentityFileError(
            f"{file} is a damaged movex_p2p identity (its checksum does not match): "
            f"restore it from a backup, or delete it to start as a new peer"
        )
    return key


def _write_temporary(file: Path, data: bytes) -> str:
    """A new file beside ``file`` (mode 0600) holding ``data``, flushed to disk: its path."""
    # no tempfile module: it imports random and threading, and the pure cores import this module
    name = str(file.with_name(f".{file.name}.{os.urandom(6).hex()}.tmp"))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(name, flags, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return name


def _create_exclusive(file: Path, data: bytes) -> bool:
    """Put ``data`` at ``file`` whole, unless it exists (False): never a half-written file, never a replaced one."""
    name = _write_temporary(file, data)
    try:
        if os.name == "nt":
            os.rename(name, file)  # fails if the target exists
            return True
        os.link(name, file)  # fails if the target exists; the file appears complete
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK}:
            raise
        return _create_in_place(file, data)  # a file system without hard links (FAT)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    return True


def _create_in_place(file: Path, data: bytes) -> bool:
    # Exclusive, but a reader racing the write may see a short file (and get IdentityFileError).
    try:
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    return True


def _replace(file: Path, data: bytes) -> None:
    """Atomically replace ``file`` with ``data`` (mode 0600)."""
    name = _write_temporary(file, data)
    try:
        os.replace(name, file)
    except BaseException:
        os.unlink(name)
        raise


@functools.lru_cache(maxsize=4096)
def peer_id_of(public_key: bytes) -> PeerId:
    """The peer id that ``public_key`` (32 raw bytes) proves (ValueError for another length)."""
    if type(public_key) is not bytes or len(public_key) != KEY_SIZE:
        raise ValueError(f"an Ed25519 public key has {KEY_SIZE} bytes")
    digest = hashlib.sha256(b"movex-p2p/peer-id\x00" + public_key).digest()
    return PeerId(base64.b32encode(digest).decode().lower()[:_ID_CHARS])


if lib.sodium_init() < 0:  # 0: initialised now, 1: already (by PyNaCl or another user)
    raise ImportError("libsodium could not be initialised")


def _seed_keypair(seed: bytes) -> tuple[bytes, bytes]:
    """(public key, libsodium's 64-byte secret key) of a 32-byte Ed25519 private key."""
    public, secret = ffi.new("unsigned char[]", KEY_SIZE), ffi.new("unsigned char[]", 2 * KEY_SIZE)
    if lib.crypto_sign_seed_keypair(public, secret, seed) != 0:
        raise RuntimeError("libsodium: crypto_sign_seed_keypair failed")
    return bytes(ffi.buffer(public, KEY_SIZE)), bytes(ffi.buffer(secret, 2 * KEY_SIZE))


def _sign(data: bytes, secret: bytes) -> bytes:
    signed = ffi.new("unsigned char[]", SIGNATURE_SIZE + len(data))
    if lib.crypto_sign(signed, ffi.NULL, data, len(data), secret) != 0:
        raise RuntimeError("libsodium: crypto_sign failed")
    return bytes(ffi.buffer(signed, SIGNATURE_SIZE))


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``data`` (False for any malformed part).

    libsodium's rules (strict: small-order keys and non-canonical signatures are refused), the
    same on every peer, so that peers never disagree on a signature.
    """
    if type(public_key) is not bytes or len(public_key) != KEY_SIZE:
        return False
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE or type(data) is not bytes:
        return False
    signed = signature + data
    out = ffi.new("unsigned char[]", len(signed))
    return bool(lib.crypto_sign_open(out, ffi.NULL, signed, len(signed), public_key) == 0)


class Identity:
    """An Ed25519 key pair and the peer id it proves."""

    __slots__ = ("_key", "_seed", "id", "public_key")

    def __init__(self, private_key: bytes) -> None:
        """From 32 raw private-key bytes (see :meth:`generate` and :meth:`load_or_create`)."""
        if len(private_key) != KEY_SIZE:
            raise ValueError(f"an Ed25519 private key has {KEY_SIZE} bytes, not {len(private_key)}")
        self._seed = bytes(private_key)
        public_key, self._key = _seed_keypair(self._seed)
        self.public_key: bytes = public_key
        self.id: PeerId = peer_id_of(self.public_key)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity from the operating system's randomness."""
        return cls(os.urandom(KEY_SIZE))

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Identity:
        """The identity stored at ``path``, created there (readable by this user only) if absent.

        Safe when many threads or processes call it at once for one path: all get the same
        identity. Raises :class:`~movex_p2p.errors.IdentityFileError` (a ValueError) if the
        file exists but is corrupted, truncated or no identity file; warns with
        :class:`~movex_p2p.errors.InsecureIdentityFile` if other users may read it (POSIX).
        A file of the first format (32 raw bytes, no checksum) is loaded and rewritten in the
        checksummed format.
        """
        file = Path(path)
        try:
            return cls._load(file)
        except FileNotFoundError:
            pass
        file.parent.mkdir(parents=True, exist_ok=True)
        created = cls.generate()
        if _create_exclusive(file, _encode(created.private_bytes())):
            return created
        return cls._load(file)  # another thread or process created it first: theirs is the one

    @classmethod
    def _load(cls, file: Path) -> Identity:
        with file.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read(_FILE_SIZE + 1)
        if os.name == "posix" and mode & 0o077:
            warnings.warn(
                InsecureIdentityFile(
                    f"{file} is readable by other users (mode {stat.S_IMODE(mode):o}): anyone who reads it "
                    f"can act as this peer; run chmod 600 on it"
                ),
                stacklevel=3,
            )
        if len(raw) == KEY_SIZE and not raw.startswith(_MAGIC[:8]):  # (a truncated new file starts so)
            identity = cls(raw)  # the first format: upgrade it so that later loads are checked
            try:
                _replace(file, _encode(raw))
            except OSError as exc:
                warnings.warn(f"could not rewrite {file} with a checksum ({exc}); it still loads", stacklevel=3)
            return identity
        return cls(_decode(file, raw))

    def private_bytes(self) -> bytes:
        """The raw private key: keep it secret (``load_or_create`` stores it with a header and a checksum)."""
        return self._seed

    def sign(self, data: bytes) -> bytes:
        """This identity's Ed25519 signature of ``data`` (64 bytes)."""
        return _sign(data, self._key)

    def __repr__(self) -> str:
        return f"<Identity {self.id}>"
