"""Authenticated offer/answer exchange over TCP: one short-lived connection per pair of peers.

Either peer may dial the other's signaling port (see :mod:`movex_p2p.transport.mesh` for who
does, and which link is kept). Each side proves two things before anything that matters is
revealed: that it knows the room secret (a PAKE, so a captured exchange cannot be guessed
offline) and that it holds the private key its peer id is derived from (an Ed25519 signature
over the transcript). The SDPs and the peer exchange are bound to both proofs::

    dialer -> listener  Hello(version, sender, receiver, name, incarnation, nonce_d, key_d, pake_d)
    listener -> dialer  Challenge(peer, name, incarnation, nonce_l, key_l, pake_l,
                                  proof = MAC_K("challenge", T), sig = sign_l("challenge", T))
    dialer -> listener  Offer(sdp, me, members, mac = MAC_K("offer", T, offer), sig = sign_d(same))
    listener -> dialer  Answer(sdp, me, members, mac = MAC_K("answer", T, offer, answer), sig = sign_l(same))
                        or Busy(mac, sig over "busy", T, offer): the pair is linked already
    dialer -> listener  Confirm(mac = MAC_K("confirm", T, offer, answer), sig = sign_d(same))

``T`` is the transcript of Hello and Challenge: the protocol version, both ids, names,
incarnations, fresh nonces, public keys and PAKE messages. ``K`` is the SPAKE2 key both sides
derive from their PAKE messages and the room key (:func:`derive_key`: scrypt of the secret,
salted with the room name); a side that does not know the secret derives another ``K`` and
its MAC fails. A peer id must equal :func:`~movex_p2p.identity.peer_id_of` of the key that
signs, so nobody can answer for another peer's id; the signatures also cover both nonces and,
by the end, both SDPs (which carry the DTLS fingerprints), so the data channel that follows is
bound to both identities and to the secret.

A listener that refuses the dialer's address (too many failed handshakes from it lately)
answers the Hello with one ``Refusal(reason, retry)`` instead of a Challenge, then hangs up;
a dialer whose check of the Challenge fails sends one in place of its Offer (``retry`` 0), so
the listener learns that the secrets differ rather than seeing a cut-short handshake. Nobody
signs a Refusal (its sender has proven nothing, or could not check): the side that gets one
takes it as a hint, like a failed MAC it cannot tell from a stranger's, and raises
:class:`Refused` (an ``AuthenticationFailed``) with the reason and the seconds until a retry.

A listener sends no SDP before the dialer's Offer verifies, a dialer sends no SDP before the
listener's Challenge verifies. A stranger learns the listener's id, name and public key (mDNS
announces the first two anyway) and a PAKE message, which tells nothing about the secret: each
handshake is one online guess at most, and the LAN transport bounds handshakes per address.

``receiver`` is the peer the dialer means to reach, or ``""`` when it dials an address without
knowing who listens there ("join by address"). ``me`` is the sender's own contact (its
addresses and signaling port) and ``members`` the contacts of the peers it has authenticated
links with (peer exchange: at most :data:`MAX_MEMBERS`, each at most :data:`MAX_ADDRESSES`
IPv4 addresses): a hint to dial, never proof of anything.

Without a secret (``secret=None``) the room key is derived from the well-known empty secret:
links are then authenticated against accidental cross-talk only (identities are still proven).

Wire format: every message is a 4-byte big-endian length then a UTF-8 JSON object, at most
:data:`MAX_MESSAGE` bytes. This module is the only code that sees those bytes; every decoding
failure is a :class:`~movex_p2p.errors.RemoteProtocolError`.
"""

from __future__ import annotations

import contextlib
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
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import AuthenticationFailed, ConnectError, LocalProtocolError, RemoteProtocolError
from ..identity import KEY_SIZE, SIGNATURE_SIZE, Identity, peer_id_of, verify
from ..ids import PeerId
from .contact import MAX_ADDRESSES, MAX_MEMBERS, Contact
from .pake import MESSAGE_SIZE, PakeError, SymmetricSpake2

__all__ = [
    "MAX_ADDRESSES",
    "MAX_ID",
    "MAX_MEMBERS",
    "MAX_MESSAGE",
    "NONCE_SIZE",
    "PAKE_SIZE",
    "PROTOCOL_VERSION",
    "Answer",
    "Busy",
    "Challenge",
    "Confirm",
    "Contact",
    "Declined",
    "DialResult",
    "Exchange",
    "Hello",
    "Offer",
    "Pake",
    "Refusal",
    "Refused",
    "SignalMessage",
    "decode",
    "derive_key",
    "encode",
    "mac",
    "read_message",
    "refuse",
    "run_dialer",
    "run_listener",
    "transcript",
]

PROTOCOL_VERSION: Final = 4
"""3: SPAKE2 instead of a MAC under a PBKDF2 key, Ed25519 identities proven, a final Confirm;
4: the SPAKE2 of :mod:`.pake` (libsodium's group arithmetic) in place of the ``spake2`` package's."""
MAX_MESSAGE: Final = 64 * 1024
MAX_ID: Final = 256
MAX_NAME: Final = 256
NONCE_SIZE: Final = 16
PAKE_SIZE: Final = MESSAGE_SIZE
"""Bytes of a SPAKE2 message (a side byte and a group element)."""
MAC_SIZE: Final = 32
MAX_REASON: Final = 200
"""Characters of a refusal's reason."""
MAX_RETRY: Final = 3600
"""The longest retry time a refusal may name, in seconds."""
_PROOF_FAILED: Final = "your proof of the room secret failed (a wrong room secret?)"
"""What a dialer tells a listener whose Challenge did not verify."""
_SCRYPT: Final = {"n": 2**15, "r": 8, "p": 1}
"""scrypt cost: ~32 MiB and ~65 ms once per endpoint (off the event loop)."""
_HEADER = struct.Struct(">I")
_LABEL: Final = b"movex-p2p/signaling/v4"


def derive_key(room: str, secret: str | None) -> bytes:
    """The 32-byte room key: scrypt(secret or "", salt = protocol label + room); the PAKE's password."""
    salt = b"movex-p2p/v3/room\x00" + room.encode()
    return Scrypt(salt=salt, length=32, **_SCRYPT).derive((secret or "").encode())


class Pake:
    """One side of one SPAKE2 exchange under the room key (fresh per handshake)."""

    def __init__(self, key: bytes) -> None:
        self._state = SymmetricSpake2(key, label=_LABEL)
        self.message: bytes = self._state.message

    def finish(self, theirs: bytes) -> bytes:
        """The session key ``K``; AuthenticationFailed if the other side's message is unusable."""
        try:
            return self._state.finish(theirs)
        except PakeError as exc:
            raise AuthenticationFailed(f"key exchange failed: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """What an Offer or an Answer carries besides its proofs: the SDP and the peer exchange."""

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
    key: bytes
    pake: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """The listener's id, name, nonce, key and PAKE message, its proof of the room key and its signature."""

    peer: PeerId
    name: str
    incarnation: int
    nonce: bytes
    key: bytes
    pake: bytes
    proof: bytes
    sig: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """The dialer's SDP offer and peer exchange, MAC'd and signed over the transcript."""

    body: Exchange
    mac: bytes
    sig: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The listener's SDP answer and peer exchange, MAC'd and signed over the transcript and the offer."""

    body: Exchange
    mac: bytes
    sig: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Busy:
    """The listener turns an authenticated dialer away: it holds a link (or a handshake) of the pair already."""

    mac: bytes
    sig: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirm:
    """The dialer's last word: its MAC and signature over the whole exchange, both SDPs included."""

    mac: bytes
    sig: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """One side turns the other away and says why (unsigned): a listener refuses the dialer's
    address for ``retry`` more seconds, or a dialer found the listener's proof wrong (``retry`` 0)."""

    reason: str
    retry: int

    def __post_init__(self) -> None:
        if len(self.reason) > MAX_REASON or not self.reason.isprintable():
            raise ValueError(f"a refusal's reason: at most {MAX_REASON} printable characters")
        if isinstance(self.retry, bool) or not isinstance(self.retry, int) or not 0 <= self.retry <= MAX_RETRY:
            raise ValueError(f"a refusal's retry: whole seconds within 0..{MAX_RETRY}")


class Refused(AuthenticationFailed):
    """The other side turned us away with a :class:`Refusal`: its reason (unsigned) and ``retry_after`` seconds."""

    def __init__(self, who: str, refusal: Refusal) -> None:
        retry = f", retry after {refusal.retry} s" if refusal.retry else ""
        super().__init__(f"{who} refused us: {refusal.reason}{retry}")
        self.reason = refusal.reason
        self.retry_after = refusal.retry


class Declined(ConnectError):
    """No new link with ``peer``, by the rules: this side or the other holds the pair already (no failure)."""

    def __init__(self, peer: PeerId) -> None:
        super().__init__(f"a link with {peer} is already held")
        self.peer = peer


SignalMessage = Hello | Challenge | Offer | Answer | Busy | Confirm | Refusal
_M = TypeVar("_M", Hello, Challenge, Offer, Answer, Busy, Confirm, Refusal)


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
                "key": message.key.hex(),
                "pake": message.pake.hex(),
            }
        case Challenge():
            body = {
                "t": "challenge",
                "id": message.peer,
                "name": message.name,
                "inc": message.incarnation,
                "nonce": message.nonce.hex(),
                "key": message.key.hex(),
                "pake": message.pake.hex(),
                "proof": message.proof.hex(),
                "sig": message.sig.hex(),
            }
        case Offer():
            body = {"t": "offer", **_exchange_json(message.body), "mac": message.mac.hex(), "sig": message.sig.hex()}
        case Answer():
            body = {"t": "answer", **_exchange_json(message.body), "mac": message.mac.hex(), "sig": message.sig.hex()}
        case Busy():
            body = {"t": "busy", "mac": message.mac.hex(), "sig": message.sig.hex()}
        case Confirm():
            body = {"t": "confirm", "mac": message.mac.hex(), "sig": message.sig.hex()}
        case Refusal():
            body = {"t": "refused", "why": message.reason, "retry": message.retry}
    payload = json.dumps(body, separators=(",", ":")).encode()
    if len(payload) > MAX_MESSAGE:
        raise ValueError(f"signaling message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
    return _HEADER.pack(len(payload)) + payload


def _str(body: dict[str, Any], key: str, *, limit: int = MAX_NAME) -> str:
    return _text(body[key], key, limit=limit)


def _text(value: object, what: str, *, limit: int = MAX_NAME) -> str:
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


def _proofs(body: dict[str, Any]) -> dict[str, bytes]:
    return {"mac": _hex(body, "mac", MAC_SIZE), "sig": _hex(body, "sig", SIGNATURE_SIZE)}


def decode(payload: bytes) -> SignalMessage:
    """Parse one message body (without its length prefix); RemoteProtocolError if malformed, and nothing else."""
    try:
        return _decode(payload)
    except RemoteProtocolError:
        raise
    except Exception as exc:  # any input: json and its checks raise many kinds (RecursionError, MemoryError...)
        raise RemoteProtocolError(f"malformed signaling message: {type(exc).__name__}: {exc}"[:200]) from None


def _decode(payload: bytes) -> SignalMessage:
    if len(payload) > MAX_MESSAGE:
        raise RemoteProtocolError(f"signaling message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
    text = payload.decode()
    if _nesting(text) > 8:  # no message nests deeper than 4: refuse before json recurses
        raise ValueError("nested too deeply")
    body = json.loads(text)
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
                key=_hex(body, "key", KEY_SIZE),
                pake=_hex(body, "pake", PAKE_SIZE),
            )
        case "challenge":
            return Challenge(
                peer=_peer_id(body["id"], "id"),
                name=_str(body, "name"),
                incarnation=_int(body, "inc"),
                nonce=_hex(body, "nonce", NONCE_SIZE),
                key=_hex(body, "key", KEY_SIZE),
                pake=_hex(body, "pake", PAKE_SIZE),
                proof=_hex(body, "proof", MAC_SIZE),
                sig=_hex(body, "sig", SIGNATURE_SIZE),
            )
        case "offer":
            return Offer(body=_exchange(body), **_proofs(body))
        case "answer":
            return Answer(body=_exchange(body), **_proofs(body))
        case "busy":
            return Busy(**_proofs(body))
        case "confirm":
            return Confirm(**_proofs(body))
        case "refused":
            return Refusal(
                reason=_str(body, "why", limit=MAX_REASON), retry=_uint(body["retry"], "retry", limit=MAX_RETRY + 1)
            )
        case other:
            raise ValueError(f"unknown message type {str(other)[:20]!r}")


def _nesting(text: str) -> int:
    """The deepest bracket nesting in ``text`` (strings included: an over-estimate is fine)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


async def read_message(stream: BufferedByteReceiveStream) -> SignalMessage:
    """Read one length-prefixed message; RemoteProtocolError if too long, malformed or cut short."""
    try:
        (size,) = _HEADER.unpack(await stream.receive_exactly(_HEADER.size))
        if size > MAX_MESSAGE:
            raise RemoteProtocolError(f"signaling message of {size} bytes exceeds {MAX_MESSAGE}")
        return decode(await stream.receive_exactly(size))
    except (anyio.IncompleteRead, anyio.EndOfStream) as exc:
        raise RemoteProtocolError("signaling connection closed mid-exchange") from exc


# --- transcript, MACs and signatures ---------------------------------------------------------


def transcript(label: str, hello: Hello, challenge: Challenge, *parts: bytes) -> bytes:
    """The bytes one step's MAC and signature cover: both sides' introductions plus ``parts``."""
    fields: list[bytes] = [
        _LABEL,
        label.encode(),
        str(hello.version).encode(),
        hello.sender.encode(),
        hello.receiver.encode(),
        hello.name.encode(),
        str(hello.incarnation).encode(),
        hello.nonce,
        hello.key,
        hello.pake,
        challenge.peer.encode(),
        challenge.name.encode(),
        str(challenge.incarnation).encode(),
        challenge.nonce,
        challenge.key,
        challenge.pake,
        *parts,
    ]
    return b"".join(_HEADER.pack(len(field)) + field for field in fields)


def mac(session_key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 under the PAKE's session key."""
    return hmac.new(session_key, data, hashlib.sha256).digest()


def _parts(body: Exchange) -> tuple[bytes, bytes]:
    return body.sdp.encode(), _canonical(body)


def _check(session_key: bytes, key: bytes, data: bytes, got_mac: bytes, got_sig: bytes, who: str) -> None:
    """Raise AuthenticationFailed unless ``got_mac`` proves the room key and ``got_sig`` the identity."""
    if not hmac.compare_digest(mac(session_key, data), got_mac):
        raise AuthenticationFailed(f"{who}: MAC mismatch (wrong room secret?)")
    if not verify(key, got_sig, data):
        raise AuthenticationFailed(f"{who}: bad signature (not the key its id is derived from)")


def _check_id(peer: PeerId, key: bytes, who: str) -> None:
    if peer_id_of(key) != peer:
        raise AuthenticationFailed(f"{who}: id {peer!r} is not derived from its public key")


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
    identity: Identity,
    receiver: PeerId | None,
    name: str,
    incarnation: int,
    create_offer: Callable[[Challenge], Awaitable[Exchange]],
) -> DialResult:
    """Run the dialer's side; the caller bounds it with a timeout and closes ``stream``.

    ``receiver`` is the peer we mean to reach (None: whoever listens). ``create_offer(challenge)``
    is called once the listener is authenticated (it may raise to stop there). Raises
    AuthenticationFailed, RemoteProtocolError, Declined (the listener holds the pair already),
    or ConnectError (the stream broke).
    """
    reader = BufferedByteReceiveStream(stream)
    pake = Pake(key)
    hello = Hello(
        version=PROTOCOL_VERSION,
        sender=identity.id,
        receiver=receiver or PeerId(""),
        name=name[:MAX_NAME],
        incarnation=incarnation,
        nonce=secrets.token_bytes(NONCE_SIZE),
        key=identity.public_key,
        pake=pake.message,
    )
    try:
        await stream.send(encode(hello))
        first = await read_message(reader)
        if isinstance(first, Refusal):
            raise Refused(f"the listener {hello.receiver or 'at that address'}", first)
        if not isinstance(first, Challenge):
            raise RemoteProtocolError(f"expected Challenge, got {type(first).__name__}")
        challenge = first
        who = f"listener {challenge.peer}"
        try:
            session = pake.finish(challenge.pake)
            signed = transcript("challenge", hello, challenge)
            _check(session, challenge.key, signed, challenge.proof, challenge.sig, who)
            _check_id(challenge.peer, challenge.key, who)
        except AuthenticationFailed:
            # tell the listener, which otherwise sees only a hang-up: it may be a newcomer that
            # would take it for a cut-short handshake and elect itself alone (unsigned: a hint)
            with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.send(encode(Refusal(reason=_PROOF_FAILED, retry=0)))
            raise
        if hello.receiver and challenge.peer != hello.receiver:
            raise AuthenticationFailed(f"dialed {hello.receiver!r} but {challenge.peer!r} answered")
        offer = await create_offer(challenge)
        if offer.me.peer != hello.sender:
            raise LocalProtocolError("an offer's own contact must name the dialer")
        signed = transcript("offer", hello, challenge, *_parts(offer))
        await stream.send(encode(Offer(body=offer, mac=mac(session, signed), sig=identity.sign(signed))))
        reply = await read_message(reader)
        if isinstance(reply, Busy):
            signed = transcript("busy", hello, challenge, *_parts(offer))
            _check(session, challenge.key, signed, reply.mac, reply.sig, who)
            raise Declined(challenge.peer)
        if not isinstance(reply, Answer):
            raise RemoteProtocolError(f"expected Answer, got {type(reply).__name__}")
        answer = reply
        signed = transcript("answer", hello, challenge, *_parts(offer), *_parts(answer.body))
        _check(session, challenge.key, signed, answer.mac, answer.sig, who)
        if answer.body.me.peer != challenge.peer:
            raise RemoteProtocolError(f"{challenge.peer!r} answered with the contact of {answer.body.me.peer!r}")
        signed = transcript("confirm", hello, challenge, *_parts(offer), *_parts(answer.body))
        await stream.send(encode(Confirm(mac=mac(session, signed), sig=identity.sign(signed))))
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectError(f"signaling with {hello.receiver or 'an address'} broke: {exc!r}") from exc
    return DialResult(peer=challenge.peer, name=challenge.name, incarnation=challenge.incarnation, answer=answer.body)


async def refuse(stream: ByteStream, refusal: Refusal, *, linger: float) -> None:
    """Send ``refusal`` instead of a Challenge, then hang up (the caller closes ``stream``).

    The dialer's Hello is read and dropped, and its own close awaited for up to ``linger``
    seconds: closing a TCP socket with unread bytes in it resets the connection, and a reset
    can discard the refusal before the dialer reads it. Never raises for a broken stream.
    """
    with anyio.move_on_after(linger):
        try:
            await stream.send(encode(refusal))
            drained = 0
            while drained <= MAX_MESSAGE:  # a Hello is well under it: then the dialer closes
                drained += len(await stream.receive())
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


async def run_listener(
    stream: ByteStream,
    *,
    key: bytes,
    identity: Identity,
    name: str,
    incarnation: int,
    create_answer: Callable[[Hello, Exchange], Awaitable[Exchange]],
    authenticated: Callable[[], None] | None = None,
) -> Hello:
    """Run the listener's side for one incoming connection; return the authenticated Hello.

    ``authenticated()`` is called as soon as the dialer proved the room key and its identity
    (its Offer verified). ``create_answer(hello, offer)`` is called then; it raises Declined
    to turn the dialer away with a Busy (then re-raised here). The dialer's Confirm is awaited
    before returning. Raises AuthenticationFailed, RemoteProtocolError, or ConnectError (the
    stream broke).
    """
    reader = BufferedByteReceiveStream(stream)
    me = identity.id
    try:
        hello = await _expect(reader, Hello)
        if hello.version != PROTOCOL_VERSION:
            raise RemoteProtocolError(f"unsupported signaling version {hello.version}")
        if hello.receiver not in ("", me):
            raise RemoteProtocolError(f"dial meant for {hello.receiver!r}, not us")
        who = f"dialer {hello.sender}"
        _check_id(hello.sender, hello.key, who)
        pake = Pake(key)
        session = pake.finish(hello.pake)
        unsigned = Challenge(
            peer=me,
            name=name[:MAX_NAME],
            incarnation=incarnation,
            nonce=secrets.token_bytes(NONCE_SIZE),
            key=identity.public_key,
            pake=pake.message,
            proof=b"",
            sig=b"",
        )
        signed = transcript("challenge", hello, unsigned)
        challenge = dataclasses.replace(unsigned, proof=mac(session, signed), sig=identity.sign(signed))
        await stream.send(encode(challenge))
        offer_or_refusal = await read_message(reader)
        if isinstance(offer_or_refusal, Refusal):
            raise Refused(f"dialer {hello.sender}", offer_or_refusal)
        if not isinstance(offer_or_refusal, Offer):
            raise RemoteProtocolError(f"expected Offer, got {type(offer_or_refusal).__name__}")
        offer = offer_or_refusal
        signed = transcript("offer", hello, challenge, *_parts(offer.body))
        _check(session, hello.key, signed, offer.mac, offer.sig, who)
        if offer.body.me.peer != hello.sender:
            raise RemoteProtocolError(f"{hello.sender!r} offered with the contact of {offer.body.me.peer!r}")
        if authenticated is not None:
            authenticated()
        try:
            answer = await create_answer(hello, offer.body)
        except Declined:
            signed = transcript("busy", hello, challenge, *_parts(offer.body))
            await stream.send(encode(Busy(mac=mac(session, signed), sig=identity.sign(signed))))
            raise
        if answer.me.peer != me:
            raise LocalProtocolError("an answer's own contact must name the listener")
        signed = transcript("answer", hello, challenge, *_parts(offer.body), *_parts(answer))
        await stream.send(encode(Answer(body=answer, mac=mac(session, signed), sig=identity.sign(signed))))
        confirm = await _expect(reader, Confirm)
        signed = transcript("confirm", hello, challenge, *_parts(offer.body), *_parts(answer))
        _check(session, hello.key, signed, confirm.mac, confirm.sig, who)
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectError(f"signaling connection broke: {exc!r}") from exc
    return hello
