"""Authenticated offer/answer exchange over TCP: one short-lived connection per pair of peers.

Either peer may dial the other's signaling port (see :mod:`movex_p2p.transport.mesh` for who
does, and which link is kept). Both sides prove they hold the room key before anything that
matters is revealed, and the SDPs and the peer exchange are bound to the proof::

    dialer -> listener  Hello(version, sender, receiver, name, incarnation, nonce_d)
    listener -> dialer  Challenge(peer, name, incarnation, nonce_l, proof = MAC("challenge", transcript))
    dialer -> listener  Offer(sdp, me, members, mac = MAC("offer", transcript, offer))
    listener -> dialer  Answer(sdp, me, members, mac = MAC("answer", transcript, offer, answer))
                        or Busy(mac = MAC("busy", transcript, offer)): the pair is linked already

``receiver`` is the peer the dialer means to reach, or ``""`` when it dials an address without
knowing who listens there ("join by address"); the Challenge names the listener. ``me`` is the
sender's own contact (its addresses and signaling port) and ``members`` the contacts of the
peers it has authenticated links with (peer exchange: at most :data:`MAX_MEMBERS`, each at most
:data:`MAX_ADDRESSES` IPv4 addresses): a hint to dial, never proof of anything.

``MAC`` is HMAC-SHA256 under :func:`derive_key` (room, secret); ``transcript`` covers the
protocol version, both ids and names, both incarnations and both fresh nonces. The SDPs carry
the DTLS fingerprints, so the data channel that follows is bound to the secret. A listener
sends no SDP before the dialer's offer MAC verifies, a dialer sends no SDP before the
listener's proof verifies: a peer without the secret gets no link and learns nothing but the
listener's id and name (which mDNS announces anyway) and a MAC over public values and random
nonces (an offline guess of a weak secret stays possible: use a strong secret).

Without a secret (``secret=None``) the key is derived from the room name and the well-known
empty secret ``""``: links are then authenticated against accidental cross-talk only.

Wire format: every message is a 4-byte big-endian length then a UTF-8 JSON object, at most
:data:`MAX_MESSAGE` bytes. This module is the only code that sees those bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import json
import secrets
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import anyio
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

from ..errors import AuthenticationFailed, ConnectError, LocalProtocolError, RemoteProtocolError
from ..ids import PeerId

__all__ = [
    "MAX_ADDRESSES",
    "MAX_ID",
    "MAX_MEMBERS",
    "MAX_MESSAGE",
    "NONCE_SIZE",
    "PROTOCOL_VERSION",
    "Answer",
    "Busy",
    "Challenge",
    "Contact",
    "Declined",
    "DialResult",
    "Exchange",
    "Hello",
    "Offer",
    "SignalMessage",
    "decode",
    "derive_key",
    "encode",
    "mac",
    "make_answer",
    "make_busy",
    "make_challenge",
    "make_offer",
    "new_hello",
    "read_message",
    "run_dialer",
    "run_listener",
    "verify_answer",
    "verify_busy",
    "verify_challenge",
    "verify_offer",
]

PROTOCOL_VERSION: Final = 2
"""2: either side may dial, the Challenge names the listener, Offer and Answer carry the peer exchange."""
MAX_MESSAGE: Final = 64 * 1024
MAX_MEMBERS: Final = 32
"""Most contacts one side passes on in a handshake."""
MAX_ADDRESSES: Final = 8
"""Most addresses in one contact."""
MAX_ID: Final = 256
NONCE_SIZE: Final = 16
_KDF_ITERATIONS: Final = 20_000
_HEADER = struct.Struct(">I")


def derive_key(room: str, secret: str | None) -> bytes:
    """The 32-byte room key: PBKDF2-HMAC-SHA256(secret or "", salt = protocol label + room)."""
    salt = b"movex-p2p/v1/room\x00" + room.encode()
    return hashlib.pbkdf2_hmac("sha256", (secret or "").encode(), salt, _KDF_ITERATIONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """Where a peer listens for signaling: its IPv4 addresses and TCP port."""

    peer: PeerId
    addresses: tuple[str, ...]
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """What an Offer or an Answer carries besides its MAC: the SDP and the peer exchange."""

    sdp: str
    me: Contact
    members: tuple[Contact, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """The dialer introduces itself and names the peer it means to reach ("" = whoever listens)."""

    version: int
    sender: PeerId
    receiver: PeerId
    name: str
    incarnation: int
    nonce: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """The listener's id, name, nonce and its proof that it holds the room key."""

    peer: PeerId
    name: str
    incarnation: int
    nonce: bytes
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """The dialer's SDP offer and peer exchange, MAC'd over the transcript."""

    body: Exchange
    mac: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The listener's SDP answer and peer exchange, MAC'd over the transcript and the offer."""

    body: Exchange
    mac: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Busy:
    """The listener turns an authenticated dialer away: it holds a link (or a handshake) of the pair already."""

    mac: bytes


class Declined(ConnectError):
    """No new link with ``peer``, by the rules: this side or the other holds the pair already (no failure)."""

    def __init__(self, peer: PeerId) -> None:
        super().__init__(f"a link with {peer} is already held")
        self.peer = peer


SignalMessage = Hello | Challenge | Offer | Answer | Busy
_M = TypeVar("_M", Hello, Challenge, Offer, Answer, Busy)


# --- codec ---------------------------------------------------------------------------------


def _contact_json(contact: Contact) -> list[Any]:
    return [contact.peer, list(contact.addresses), contact.port]


def _exchange_json(body: Exchange) -> dict[str, Any]:
    return {"sdp": body.sdp, "me": _contact_json(body.me), "peers": [_contact_json(c) for c in body.members]}


def _canonical(body: Exchange) -> bytes:
    """The bytes a MAC covers for an exchange (deterministic for decoded values too)."""
    members = [_contact_json(contact) for contact in body.members]
    return json.dumps([_contact_json(body.me), members], separators=(",", ":")).encode()


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
                "id": message.peer,
                "name": message.name,
                "inc": message.incarnation,
                "nonce": message.nonce.hex(),
                "proof": message.proof.hex(),
            }
        case Offer():
            body = {"t": "offer", **_exchange_json(message.body), "mac": message.mac.hex()}
        case Answer():
            body = {"t": "answer", **_exchange_json(message.body), "mac": message.mac.hex()}
        case Busy():
            body = {"t": "busy", "mac": message.mac.hex()}
    payload = json.dumps(body, separators=(",", ":")).encode()
    if len(payload) > MAX_MESSAGE:
        raise ValueError(f"signaling message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
    return _HEADER.pack(len(payload)) + payload


def _str(body: dict[str, Any], key: str, *, limit: int = 256) -> str:
    return _text(body[key], key, limit=limit)


def _text(value: object, what: str, *, limit: int = 256) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise TypeError(f"{what}: expected a string of at most {limit} characters")
    return value


def _uint(value: object, what: str, *, limit: int = 2**64) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
        raise TypeError(f"{what}: expected an integer in [0, {limit})")
    return value


def _int(body: dict[str, Any], key: str) -> int:
    return _uint(body[key], key)


def _hex(body: dict[str, Any], key: str, size: int) -> bytes:
    value = bytes.fromhex(_str(body, key, limit=2 * size))
    if len(value) != size:
        raise ValueError(f"{key}: expected {size} bytes")
    return value


def _peer_id(value: object, what: str) -> PeerId:
    text = _text(value, what, limit=MAX_ID)
    if not text or not text.isprintable():
        raise ValueError(f"{what}: expected a non-empty printable peer id")
    return PeerId(text)


def _contact(value: object) -> Contact:
    """One ``[id, [IPv4, ...], port]`` entry, strictly checked (canonical dotted quads only)."""
    if not isinstance(value, list) or len(value) != 3:
        raise TypeError("contact: expected [id, [addresses], port]")
    raw_id, raw_addresses, raw_port = value
    if not isinstance(raw_addresses, list) or len(raw_addresses) > MAX_ADDRESSES:
        raise TypeError(f"contact addresses: expected a list of at most {MAX_ADDRESSES}")
    addresses = []
    for raw in raw_addresses:
        text = _text(raw, "contact address", limit=15)
        if str(ipaddress.IPv4Address(text)) != text:  # ValueError if not an IPv4 address
            raise ValueError(f"contact address {text!r} is not a canonical IPv4 address")
        addresses.append(text)
    port = _uint(raw_port, "contact port", limit=65536)
    if port == 0:
        raise ValueError("contact port 0")
    return Contact(peer=_peer_id(raw_id, "contact id"), addresses=tuple(addresses), port=port)


def _exchange(body: dict[str, Any]) -> Exchange:
    members = body["peers"]
    if not isinstance(members, list) or len(members) > MAX_MEMBERS:
        raise TypeError(f"peers: expected a list of at most {MAX_MEMBERS}")
    return Exchange(
        sdp=_str(body, "sdp", limit=MAX_MESSAGE),
        me=_contact(body["me"]),
        members=tuple(_contact(member) for member in members),
    )


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
                    sender=_peer_id(body["from"], "from"),
                    receiver=PeerId(_str(body, "to", limit=MAX_ID)),
                    name=_str(body, "name"),
                    incarnation=_int(body, "inc"),
                    nonce=_hex(body, "nonce", NONCE_SIZE),
                )
            case "challenge":
                return Challenge(
                    peer=_peer_id(body["id"], "id"),
                    name=_str(body, "name"),
                    incarnation=_int(body, "inc"),
                    nonce=_hex(body, "nonce", NONCE_SIZE),
                    proof=_hex(body, "proof", 32),
                )
            case "offer":
                return Offer(body=_exchange(body), mac=_hex(body, "mac", 32))
            case "answer":
                return Answer(body=_exchange(body), mac=_hex(body, "mac", 32))
            case "busy":
                return Busy(mac=_hex(body, "mac", 32))
            case other:
                raise ValueError(f"unknown message type {other!r}")
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError, KeyError, RecursionError) as exc:
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


def _transcript(label: str, hello: Hello, challenge: Challenge, *parts: bytes) -> bytes:
    fields: list[bytes] = [
        b"movex-p2p/signaling/v2",
        label.encode(),
        str(hello.version).encode(),
        hello.sender.encode(),
        hello.receiver.encode(),
        hello.name.encode(),
        str(hello.incarnation).encode(),
        challenge.peer.encode(),
        challenge.name.encode(),
        str(challenge.incarnation).encode(),
        hello.nonce,
        challenge.nonce,
        *parts,
    ]
    return b"".join(_HEADER.pack(len(field)) + field for field in fields)


def mac(key: bytes, label: str, hello: Hello, challenge: Challenge, *parts: bytes) -> bytes:
    """HMAC-SHA256 of one step of the exchange (pure; the challenge's own proof is not covered)."""
    return hmac.new(key, _transcript(label, hello, challenge, *parts), hashlib.sha256).digest()


def _verify(expected: bytes, got: bytes, what: str) -> None:
    if not hmac.compare_digest(expected, got):
        raise AuthenticationFailed(f"{what}: MAC mismatch (wrong room secret?)")


def _parts(body: Exchange) -> tuple[bytes, bytes]:
    return body.sdp.encode(), _canonical(body)


def make_challenge(key: bytes, hello: Hello, *, me: PeerId, name: str, incarnation: int) -> Challenge:
    """The listener's answer to a Hello: its id, a fresh nonce and its proof of the key."""
    unsigned = Challenge(peer=me, name=name, incarnation=incarnation, nonce=secrets.token_bytes(NONCE_SIZE), proof=b"")
    return dataclasses.replace(unsigned, proof=mac(key, "challenge", hello, unsigned))


def verify_challenge(key: bytes, hello: Hello, challenge: Challenge) -> None:
    """Raise AuthenticationFailed unless the listener proved the key."""
    _verify(mac(key, "challenge", hello, challenge), challenge.proof, f"listener {challenge.peer}")


def make_offer(key: bytes, hello: Hello, challenge: Challenge, body: Exchange) -> Offer:
    """The dialer's offer, bound to the transcript."""
    return Offer(body=body, mac=mac(key, "offer", hello, challenge, *_parts(body)))


def verify_offer(key: bytes, hello: Hello, challenge: Challenge, offer: Offer) -> None:
    """Raise AuthenticationFailed unless the dialer proved the key over its offer."""
    _verify(mac(key, "offer", hello, challenge, *_parts(offer.body)), offer.mac, f"dialer {hello.sender}")


def make_answer(key: bytes, hello: Hello, challenge: Challenge, offer: Exchange, body: Exchange) -> Answer:
    """The listener's answer, bound to the transcript and to the offer."""
    return Answer(body=body, mac=mac(key, "answer", hello, challenge, *_parts(offer), *_parts(body)))


def verify_answer(key: bytes, hello: Hello, challenge: Challenge, offer: Exchange, answer: Answer) -> None:
    """Raise AuthenticationFailed unless the listener proved the key over the offer and its answer."""
    expected = mac(key, "answer", hello, challenge, *_parts(offer), *_parts(answer.body))
    _verify(expected, answer.mac, f"listener {challenge.peer}")


def make_busy(key: bytes, hello: Hello, challenge: Challenge, offer: Exchange) -> Busy:
    """The listener's authenticated "the pair is linked already"."""
    return Busy(mac=mac(key, "busy", hello, challenge, *_parts(offer)))


def verify_busy(key: bytes, hello: Hello, challenge: Challenge, offer: Exchange, busy: Busy) -> None:
    """Raise AuthenticationFailed unless the listener proved the key over its refusal."""
    _verify(mac(key, "busy", hello, challenge, *_parts(offer)), busy.mac, f"listener {challenge.peer}")


def new_hello(*, sender: PeerId, receiver: PeerId | None, name: str, incarnation: int) -> Hello:
    """A Hello with a fresh nonce (``receiver=None``: whoever listens at the address dialed)."""
    return Hello(
        version=PROTOCOL_VERSION,
        sender=sender,
        receiver=receiver or PeerId(""),
        name=name,
        incarnation=incarnation,
        nonce=secrets.token_bytes(NONCE_SIZE),
    )


# --- the two roles over a byte stream ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DialResult:
    """What the dialer learned, all authenticated: who listened, and its answer."""

    peer: PeerId
    name: str
    incarnation: int
    answer: Exchange


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
    create_offer: Callable[[Challenge], Awaitable[Exchange]],
) -> DialResult:
    """Run the dialer's side; the caller bounds it with a timeout and closes ``stream``.

    ``create_offer(challenge)`` is called once the listener is authenticated (it may raise to
    stop there). Raises AuthenticationFailed, RemoteProtocolError, Declined (the listener holds
    the pair already), or ConnectError (the stream broke).
    """
    reader = BufferedByteReceiveStream(stream)
    try:
        await stream.send(encode(hello))
        challenge = await _expect(reader, Challenge)
        verify_challenge(key, hello, challenge)
        if hello.receiver and challenge.peer != hello.receiver:
            raise RemoteProtocolError(f"dialed {hello.receiver!r} but {challenge.peer!r} answered")
        offer = await create_offer(challenge)
        if offer.me.peer != hello.sender:
            raise LocalProtocolError("an offer's own contact must name the dialer")
        await stream.send(encode(make_offer(key, hello, challenge, offer)))
        reply = await read_message(reader)
        if isinstance(reply, Busy):
            verify_busy(key, hello, challenge, offer, reply)
            raise Declined(challenge.peer)
        if not isinstance(reply, Answer):
            raise RemoteProtocolError(f"expected Answer, got {type(reply).__name__}")
        answer = reply
        verify_answer(key, hello, challenge, offer, answer)
        if answer.body.me.peer != challenge.peer:
            raise RemoteProtocolError(f"{challenge.peer!r} answered with the contact of {answer.body.me.peer!r}")
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectError(f"signaling with {hello.receiver or 'an address'} broke: {exc!r}") from exc
    return DialResult(peer=challenge.peer, name=challenge.name, incarnation=challenge.incarnation, answer=answer.body)


async def run_listener(
    stream: ByteStream,
    *,
    key: bytes,
    me: PeerId,
    name: str,
    incarnation: int,
    create_answer: Callable[[Hello, Exchange], Awaitable[Exchange]],
) -> Hello:
    """Run the listener's side for one incoming connection; return the authenticated Hello.

    ``create_answer(hello, offer)`` is called only once the dialer is authenticated; it raises
    Declined to turn the dialer away with a Busy (then re-raised here). Raises
    AuthenticationFailed, RemoteProtocolError, or ConnectError (the stream broke).
    """
    reader = BufferedByteReceiveStream(stream)
    try:
        hello = await _expect(reader, Hello)
        if hello.version != PROTOCOL_VERSION:
            raise RemoteProtocolError(f"unsupported signaling version {hello.version}")
        if hello.receiver not in ("", me):
            raise RemoteProtocolError(f"dial meant for {hello.receiver!r}, not us")
        challenge = make_challenge(key, hello, me=me, name=name, incarnation=incarnation)
        await stream.send(encode(challenge))
        offer = await _expect(reader, Offer)
        verify_offer(key, hello, challenge, offer)
        if offer.body.me.peer != hello.sender:
            raise RemoteProtocolError(f"{hello.sender!r} offered with the contact of {offer.body.me.peer!r}")
        try:
            answer = await create_answer(hello, offer.body)
        except Declined:
            await stream.send(encode(make_busy(key, hello, challenge, offer.body)))
            raise
        if answer.me.peer != me:
            raise LocalProtocolError("an answer's own contact must name the listener")
        await stream.send(encode(make_answer(key, hello, challenge, offer.body, answer)))
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectError(f"signaling connection broke: {exc!r}") from exc
    return hello
