"""Authenticated offer/answer exchange over TCP: one short-lived connection per pair of peers.

The lower peer id dials the higher peer's signaling port. Both sides prove they hold the room
key before anything that matters is revealed, and the SDPs are bound to the proof::

    dialer -> listener  Hello(version, sender, receiver, name, incarnation, nonce_d)
    listener -> dialer  Challenge(incarnation, nonce_l, proof = MAC("challenge", transcript))
    dialer -> listener  Offer(sdp_offer, mac = MAC("offer", transcript, sdp_offer))
    listener -> dialer  Answer(sdp_answer, mac = MAC("answer", transcript, sdp_offer, sdp_answer))

``MAC`` is HMAC-SHA256 under :func:`derive_key` (room, secret); ``transcript`` covers the
protocol version, both ids, the dialer's name, both incarnations and both fresh nonces. The
SDPs carry the DTLS fingerprints, so the data channel that follows is bound to the secret.
A listener sends no SDP before the dialer's offer MAC verifies, a dialer sends no SDP before
the listener's proof verifies: a peer without the secret gets no link and learns nothing but
a MAC over public values and random nonces (an offline guess of a weak secret stays possible:
use a strong secret).

Without a secret (``secret=None``) the key is derived from the room name and the well-known
empty secret ``""``: links are then authenticated against accidental cross-talk only.

Wire format: every message is a 4-byte big-endian length then a UTF-8 JSON object, at most
:data:`MAX_MESSAGE` bytes. This module is the only code that sees those bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import anyio
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

from ..errors import AuthenticationFailed, ConnectError, RemoteProtocolError
from ..ids import PeerId

__all__ = [
    "MAX_MESSAGE",
    "PROTOCOL_VERSION",
    "Answer",
    "Challenge",
    "Hello",
    "Offer",
    "SignalMessage",
    "decode",
    "derive_key",
    "encode",
    "run_dialer",
    "run_listener",
]

PROTOCOL_VERSION: Final = 1
MAX_MESSAGE: Final = 64 * 1024
NONCE_SIZE: Final = 16
_KDF_ITERATIONS: Final = 20_000
_HEADER = struct.Struct(">I")


def derive_key(room: str, secret: str | None) -> bytes:
    """The 32-byte room key: PBKDF2-HMAC-SHA256(secret or "", salt = protocol label + room)."""
    salt = b"movex-p2p/v1/room\x00" + room.encode()
    return hashlib.pbkdf2_hmac("sha256", (secret or "").encode(), salt, _KDF_ITERATIONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """The dialer introduces itself and names the peer it means to reach."""

    version: int
    sender: PeerId
    receiver: PeerId
    name: str
    incarnation: int
    nonce: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """The listener's nonce and its proof that it holds the room key."""

    incarnation: int
    nonce: bytes
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """The dialer's SDP offer, MAC'd over the transcript."""

    sdp: str
    mac: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The listener's SDP answer, MAC'd over the transcript and both SDPs."""

    sdp: str
    mac: bytes


SignalMessage = Hello | Challenge | Offer | Answer
_M = TypeVar("_M", Hello, Challenge, Offer, Answer)


# --- codec ---------------------------------------------------------------------------------


def encode(message: SignalMessage) -> bytes:
    """One length-prefixed message."""
    body: dict[str, Any]
    match message:
        case Hello():
            body = {
                "t": "hello",
                "v": message.version,
                "from": message.sender,
                "to": message.receiver,
                "name": message.name,
                "inc": message.incarnation,
                "nonce": message.nonce.hex(),
            }
        case Challenge():
            body = {
                "t": "challenge",
                "inc": message.incarnation,
                "nonce": message.nonce.hex(),
                "proof": message.proof.hex(),
            }
        case Offer():
            body = {"t": "offer", "sdp": message.sdp, "mac": message.mac.hex()}
        case Answer():
            body = {"t": "answer", "sdp": message.sdp, "mac": message.mac.hex()}
    payload = json.dumps(body, separators=(",", ":")).encode()
    if len(payload) > MAX_MESSAGE:
        raise ValueError(f"signaling message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
    return _HEADER.pack(len(payload)) + payload


def _str(body: dict[str, Any], key: str, *, limit: int = 256) -> str:
    value = body[key]
    if not isinstance(value, str) or len(value) > limit:
        raise TypeError(f"{key}: expected a string of at most {limit} characters")
    return value


def _int(body: dict[str, Any], key: str) -> int:
    value = body[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise TypeError(f"{key}: expected an unsigned 64-bit integer")
    return value


def _hex(body: dict[str, Any], key: str, size: int) -> bytes:
    value = bytes.fromhex(_str(body, key, limit=2 * size))
    if len(value) != size:
        raise ValueError(f"{key}: expected {size} bytes")
    return value


def decode(payload: bytes) -> SignalMessage:
    """Parse one message body (without its length prefix); RemoteProtocolError if malformed."""
    try:
        body = json.loads(payload.decode())
        if not isinstance(body, dict):
            raise TypeError("expected a JSON object")
        match body["t"]:
            case "hello":
                return Hello(
                    version=_int(body, "v"),
                    sender=PeerId(_str(body, "from")),
                    receiver=PeerId(_str(body, "to")),
                    name=_str(body, "name"),
                    incarnation=_int(body, "inc"),
                    nonce=_hex(body, "nonce", NONCE_SIZE),
                )
            case "challenge":
                return Challenge(
                    incarnation=_int(body, "inc"),
                    nonce=_hex(body, "nonce", NONCE_SIZE),
                    proof=_hex(body, "proof", 32),
                )
            case "offer":
                return Offer(sdp=_str(body, "sdp", limit=MAX_MESSAGE), mac=_hex(body, "mac", 32))
            case "answer":
                return Answer(sdp=_str(body, "sdp", limit=MAX_MESSAGE), mac=_hex(body, "mac", 32))
            case other:
                raise ValueError(f"unknown message type {other!r}")
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
        raise RemoteProtocolError(f"malformed signaling message: {exc}") from exc


async def read_message(stream: BufferedByteReceiveStream) -> SignalMessage:
    """Read one length-prefixed message; RemoteProtocolError if too long, malformed or cut short."""
    try:
        (size,) = _HEADER.unpack(await stream.receive_exactly(_HEADER.size))
        if size > MAX_MESSAGE:
            raise RemoteProtocolError(f"signaling message of {size} bytes exceeds {MAX_MESSAGE}")
        return decode(await stream.receive_exactly(size))
    except (anyio.IncompleteRead, anyio.EndOfStream) as exc:
        raise RemoteProtocolError("signaling connection closed mid-exchange") from exc


# --- MACs ----------------------------------------------------------------------------------


def _transcript(label: str, hello: Hello, challenge_incarnation: int, nonce_l: bytes, *sdps: str) -> bytes:
    parts: list[bytes] = [
        b"movex-p2p/signaling",
        label.encode(),
        str(hello.version).encode(),
        hello.sender.encode(),
        hello.receiver.encode(),
        hello.name.encode(),
        str(hello.incarnation).encode(),
        str(challenge_incarnation).encode(),
        hello.nonce,
        nonce_l,
        *(sdp.encode() for sdp in sdps),
    ]
    return b"".join(_HEADER.pack(len(part)) + part for part in parts)


def mac(key: bytes, label: str, hello: Hello, incarnation: int, nonce_l: bytes, *sdps: str) -> bytes:
    """HMAC-SHA256 of one step of the exchange (pure; exposed for tests)."""
    return hmac.new(key, _transcript(label, hello, incarnation, nonce_l, *sdps), hashlib.sha256).digest()


def _verify(expected: bytes, got: bytes, what: str) -> None:
    if not hmac.compare_digest(expected, got):
        raise AuthenticationFailed(f"{what}: MAC mismatch (wrong room secret?)")


def make_challenge(key: bytes, hello: Hello, incarnation: int) -> Challenge:
    """The listener's answer to a Hello: a fresh nonce and its proof of the key."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    return Challenge(incarnation=incarnation, nonce=nonce, proof=mac(key, "challenge", hello, incarnation, nonce))


def verify_challenge(key: bytes, hello: Hello, challenge: Challenge) -> None:
    """Raise AuthenticationFailed unless the listener proved the key."""
    expected = mac(key, "challenge", hello, challenge.incarnation, challenge.nonce)
    _verify(expected, challenge.proof, f"listener {hello.receiver}")


def make_offer(key: bytes, hello: Hello, challenge: Challenge, sdp: str) -> Offer:
    """The dialer's offer, bound to the transcript."""
    return Offer(sdp=sdp, mac=mac(key, "offer", hello, challenge.incarnation, challenge.nonce, sdp))


def verify_offer(key: bytes, hello: Hello, challenge: Challenge, offer: Offer) -> None:
    """Raise AuthenticationFailed unless the dialer proved the key over its offer."""
    expected = mac(key, "offer", hello, challenge.incarnation, challenge.nonce, offer.sdp)
    _verify(expected, offer.mac, f"dialer {hello.sender}")


def make_answer(key: bytes, hello: Hello, challenge: Challenge, offer_sdp: str, sdp: str) -> Answer:
    """The listener's answer, bound to the transcript and both SDPs."""
    return Answer(sdp=sdp, mac=mac(key, "answer", hello, challenge.incarnation, challenge.nonce, offer_sdp, sdp))


def verify_answer(key: bytes, hello: Hello, challenge: Challenge, offer_sdp: str, answer: Answer) -> None:
    """Raise AuthenticationFailed unless the listener proved the key over both SDPs."""
    expected = mac(key, "answer", hello, challenge.incarnation, challenge.nonce, offer_sdp, answer.sdp)
    _verify(expected, answer.mac, f"listener {hello.receiver}")


def new_hello(*, sender: PeerId, receiver: PeerId, name: str, incarnation: int) -> Hello:
    """A Hello with a fresh nonce."""
    return Hello(
        version=PROTOCOL_VERSION,
        sender=sender,
        receiver=receiver,
        name=name,
        incarnation=incarnation,
        nonce=secrets.token_bytes(NONCE_SIZE),
    )


# --- the two roles over a byte stream ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DialResult:
    """What the dialer learned: the listener's incarnation and its authenticated answer."""

    incarnation: int
    answer_sdp: str


async def _expect(reader: BufferedByteReceiveStream, kind: type[_M]) -> _M:
    message = await read_message(reader)
    if not isinstance(message, kind):
        raise RemoteProtocolError(f"expected {kind.__name__}, got {type(message).__name__}")
    return message


async def run_dialer(
    stream: ByteStream,
    *,
    key: bytes,
    hello: Hello,
    create_offer: Callable[[], Awaitable[str]],
) -> DialResult:
    """Run the dialer's side; the caller bounds it with a timeout and closes ``stream``.

    Raises AuthenticationFailed, RemoteProtocolError, or ConnectError (the stream broke).
    """
    reader = BufferedByteReceiveStream(stream)
    try:
        await stream.send(encode(hello))
        challenge = await _expect(reader, Challenge)
        verify_challenge(key, hello, challenge)
        offer_sdp = await create_offer()
        await stream.send(encode(make_offer(key, hello, challenge, offer_sdp)))
        answer = await _expect(reader, Answer)
        verify_answer(key, hello, challenge, offer_sdp, answer)
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectError(f"signaling with {hello.receiver} broke: {exc!r}") from exc
    return DialResult(incarnation=challenge.incarnation, answer_sdp=answer.sdp)


async def run_listener(
    stream: ByteStream,
    *,
    key: bytes,
    me: PeerId,
    incarnation: int,
    create_answer: Callable[[Hello, str], Awaitable[str]],
) -> Hello:
    """Run the listener's side for one incoming connection; return the authenticated Hello.

    ``create_answer(hello, offer_sdp)`` is called only once the dialer is authenticated.
    Raises AuthenticationFailed, RemoteProtocolError, or ConnectError (the stream broke).
    """
    reader = BufferedByteReceiveStream(stream)
    try:
        hello = await _expect(reader, Hello)
        if hello.version != PROTOCOL_VERSION:
            raise RemoteProtocolError(f"unsupported signaling version {hello.version}")
        if hello.receiver != me:
            raise RemoteProtocolError(f"dial meant for {hello.receiver!r}, not us")
        if not hello.sender < me:
            raise RemoteProtocolError(f"{hello.sender!r} dialed but the lower id must dial")
        challenge = make_challenge(key, hello, incarnation)
        await stream.send(encode(challenge))
        offer = await _expect(reader, Offer)
        verify_offer(key, hello, challenge, offer)
        answer_sdp = await create_answer(hello, offer.sdp)
        await stream.send(encode(make_answer(key, hello, challenge, offer.sdp, answer_sdp)))
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectError(f"signaling connection broke: {exc!r}") from exc
    return hello
