"""LAN transport pieces that need no socket: signaling codec and MACs, channel framing, SDP checks."""

from __future__ import annotations

import dataclasses
import struct

import anyio
import pytest
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from movex_p2p.errors import AuthenticationFailed, RemoteProtocolError
from movex_p2p.ids import PeerId
from movex_p2p.transport import signaling
from movex_p2p.transport.discovery import parse_txt
from movex_p2p.transport.lan import LanTransport, usable_interfaces
from movex_p2p.transport.signaling import (
    Answer,
    Challenge,
    Hello,
    Offer,
    decode,
    derive_key,
    encode,
    make_answer,
    make_challenge,
    make_offer,
    new_hello,
    run_dialer,
    run_listener,
    verify_answer,
    verify_challenge,
    verify_offer,
)
from movex_p2p.transport.webrtc import candidate_types, check_host_only

KEY = derive_key("room", "secret")
OFFER_SDP = "v=0\r\na=fingerprint:sha-256 AA:BB\r\na=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n"
ANSWER_SDP = "v=0\r\na=fingerprint:sha-256 CC:DD\r\na=candidate:2 1 udp 1 10.0.0.2 6000 typ host\r\n"


def hello() -> Hello:
    return new_hello(sender=PeerId("a"), receiver=PeerId("b"), name="alice", incarnation=7)


# --- codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        hello(),
        Challenge(incarnation=9, nonce=b"n" * 16, proof=b"p" * 32),
        Offer(sdp=OFFER_SDP, mac=b"m" * 32),
        Answer(sdp=ANSWER_SDP, mac=b"m" * 32),
    ],
)
def test_signaling_messages_round_trip(message: signaling.SignalMessage) -> None:
    frame = encode(message)
    (size,) = struct.unpack(">I", frame[:4])
    assert size == len(frame) - 4
    assert decode(frame[4:]) == message


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"t": "nope"}',
        b'{"t": "hello"}',
        b'{"t": "hello", "v": 1, "from": 1, "to": "b", "name": "", "inc": 1, "nonce": "00"}',
        b'{"t": "hello", "v": true, "from": "a", "to": "b", "name": "", "inc": 1, "nonce": "' + b"0" * 32 + b'"}',
        b'{"t": "challenge", "inc": -1, "nonce": "' + b"0" * 32 + b'", "proof": "' + b"0" * 64 + b'"}',
        b'{"t": "offer", "sdp": "x", "mac": "zz"}',
        b'{"t": "answer", "sdp": 3, "mac": "' + b"0" * 64 + b'"}',
    ],
)
def test_malformed_signaling_is_a_remote_protocol_error(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(payload)


def test_oversized_signaling_message_is_refused_on_encode() -> None:
    with pytest.raises(ValueError):
        encode(Offer(sdp="x" * signaling.MAX_MESSAGE, mac=b"m" * 32))


# --- keys and MACs -------------------------------------------------------------------------


def test_key_depends_on_room_and_secret_and_none_is_the_well_known_empty_secret() -> None:
    assert derive_key("room", "secret") != derive_key("room", "other")
    assert derive_key("room", "secret") != derive_key("other", "secret")
    assert derive_key("room", None) == derive_key("room", "")
    assert len(KEY) == 32


def test_macs_verify_with_the_right_key() -> None:
    h = hello()
    challenge = make_challenge(KEY, h, incarnation=3)
    verify_challenge(KEY, h, challenge)
    offer = make_offer(KEY, h, challenge, OFFER_SDP)
    verify_offer(KEY, h, challenge, offer)
    answer = make_answer(KEY, h, challenge, OFFER_SDP, ANSWER_SDP)
    verify_answer(KEY, h, challenge, OFFER_SDP, answer)


def test_macs_fail_with_a_wrong_key_or_any_tampered_field() -> None:
    h = hello()
    wrong = derive_key("room", "guess")
    challenge = make_challenge(KEY, h, incarnation=3)
    with pytest.raises(AuthenticationFailed):
        verify_challenge(wrong, h, challenge)
    offer = make_offer(KEY, h, challenge, OFFER_SDP)
    tampered = [
        (h, challenge, dataclasses.replace(offer, sdp=OFFER_SDP.replace("AA", "AB"))),  # fingerprint
        (dataclasses.replace(h, nonce=b"x" * 16), challenge, offer),  # replayed with another nonce
        (h, dataclasses.replace(challenge, nonce=b"y" * 16), offer),
        (dataclasses.replace(h, sender=PeerId("c")), challenge, offer),  # another identity
        (dataclasses.replace(h, incarnation=8), challenge, offer),
        (h, dataclasses.replace(challenge, incarnation=4), offer),
    ]
    for hello_, challenge_, offer_ in tampered:
        with pytest.raises(AuthenticationFailed):
            verify_offer(KEY, hello_, challenge_, offer_)
    answer = make_answer(KEY, h, challenge, OFFER_SDP, ANSWER_SDP)
    with pytest.raises(AuthenticationFailed):
        verify_answer(KEY, h, challenge, OFFER_SDP.replace("AA", "AB"), answer)  # binds the offer too
    with pytest.raises(AuthenticationFailed):
        verify_answer(KEY, h, challenge, OFFER_SDP, dataclasses.replace(answer, sdp=ANSWER_SDP + "x"))


# --- the handshake over an in-memory byte stream --------------------------------------------


class _Pipe(ByteStream):
    def __init__(self, tx: MemoryObjectSendStream[bytes], rx: MemoryObjectReceiveStream[bytes]) -> None:
        self._tx, self._rx = tx, rx

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return await self._rx.receive()
        except anyio.EndOfStream:
            raise
        except anyio.ClosedResourceError:
            raise anyio.EndOfStream from None

    async def send(self, item: bytes) -> None:
        await self._tx.send(item)

    async def send_eof(self) -> None:
        self._tx.close()

    async def aclose(self) -> None:
        self._tx.close()
        self._rx.close()


def pipe_pair() -> tuple[_Pipe, _Pipe]:
    a_tx, b_rx = anyio.create_memory_object_stream[bytes](16)
    b_tx, a_rx = anyio.create_memory_object_stream[bytes](16)
    return _Pipe(a_tx, a_rx), _Pipe(b_tx, b_rx)


async def handshake(dialer_key: bytes, listener_key: bytes) -> tuple[list[str], object, object]:
    calls: list[str] = []
    outcome: dict[str, object] = {}
    dialer_end, listener_end = pipe_pair()

    async def create_offer() -> str:
        calls.append("offer")
        return OFFER_SDP

    async def create_answer(h: Hello, offer_sdp: str) -> str:
        calls.append("answer")
        assert offer_sdp == OFFER_SDP
        return ANSWER_SDP

    async def dial() -> None:
        try:
            outcome["dialer"] = await run_dialer(dialer_end, key=dialer_key, hello=hello(), create_offer=create_offer)
        except Exception as exc:
            outcome["dialer"] = exc
        finally:
            await dialer_end.aclose()

    async def listen() -> None:
        try:
            outcome["listener"] = await run_listener(
                listener_end, key=listener_key, me=PeerId("b"), incarnation=5, create_answer=create_answer
            )
        except Exception as exc:
            outcome["listener"] = exc
        finally:
            await listener_end.aclose()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(dial)
            tg.start_soon(listen)
    return calls, outcome["dialer"], outcome["listener"]


async def test_handshake_with_the_right_key_exchanges_both_sdps() -> None:
    calls, dialer, listener = await handshake(KEY, KEY)
    assert calls == ["offer", "answer"]
    assert dialer == signaling.DialResult(incarnation=5, answer_sdp=ANSWER_SDP)
    assert isinstance(listener, Hello)
    assert listener.sender == "a"


async def test_a_listener_without_the_secret_never_sees_an_offer() -> None:
    calls, dialer, listener = await handshake(KEY, derive_key("room", "guess"))
    assert calls == []  # the dialer made no offer: nothing revealed
    assert isinstance(dialer, AuthenticationFailed)
    assert isinstance(listener, RemoteProtocolError)


async def test_a_dialer_without_the_secret_never_gets_an_answer() -> None:
    calls, dialer, listener = await handshake(derive_key("room", "guess"), KEY)
    assert "answer" not in calls
    assert isinstance(dialer, AuthenticationFailed)  # it cannot even verify the listener's proof
    assert isinstance(listener, RemoteProtocolError)


async def test_listener_refuses_garbage_and_wrong_direction() -> None:
    for payload in [b"\xff\xff\xff\xff", b"\x00\x00\x00\x02{}", encode(Offer(sdp="x", mac=b"m" * 32))]:
        ours, theirs = pipe_pair()

        async def never(h: Hello, sdp: str) -> str:
            raise AssertionError("must not be called")

        await theirs.send(payload)
        await theirs.send_eof()
        with pytest.raises(RemoteProtocolError):
            await run_listener(ours, key=KEY, me=PeerId("b"), incarnation=1, create_answer=never)
        await ours.aclose()
        await theirs.aclose()
    ours, theirs = pipe_pair()
    upward = new_hello(sender=PeerId("z"), receiver=PeerId("b"), name="", incarnation=1)
    await theirs.send(encode(upward))
    with pytest.raises(RemoteProtocolError, match="lower id"):
        await run_listener(ours, key=KEY, me=PeerId("b"), incarnation=1, create_answer=never)
    await ours.aclose()
    await theirs.aclose()


# --- channel framing and the link are in tests/test_link.py -------------------------------


# --- SDP, TXT, configuration ----------------------------------------------------------------


def test_host_only_check() -> None:
    check_host_only(OFFER_SDP, allowed=["10.0.0.1"])
    assert candidate_types(OFFER_SDP) == [("10.0.0.1", "host")]
    srflx = OFFER_SDP + "a=candidate:3 1 udp 1 1.2.3.4 7000 typ srflx raddr 10.0.0.1 rport 5000\r\n"
    with pytest.raises(RemoteProtocolError):
        check_host_only(srflx)
    with pytest.raises(RemoteProtocolError):
        check_host_only("v=0\r\n")
    with pytest.raises(RemoteProtocolError):
        check_host_only(OFFER_SDP, allowed=["10.0.0.9"])


def test_txt_parsing() -> None:
    props: dict[bytes, bytes | None] = {
        b"id": b"p1",
        b"room": b"r",
        b"v": b"1",
        b"inc": b"42",
        b"sig": b"5000",
        b"name": b"bob",
    }
    ann = parse_txt(props, ["10.0.0.1"], 5000)
    assert (ann.peer, ann.room, ann.incarnation, ann.port, ann.addresses) == ("p1", "r", 42, 5000, ("10.0.0.1",))
    with pytest.raises(ValueError):
        parse_txt({**props, b"inc": b"x"}, [], 1)
    with pytest.raises(ValueError):
        parse_txt({k: v for k, v in props.items() if k != b"room"}, [], 1)


def test_interfaces_and_settings_are_validated() -> None:
    assert usable_interfaces(["127.0.0.2", "127.0.0.1"]) == ["127.0.0.2"]
    with pytest.raises(ValueError):
        usable_interfaces(["127.0.0.1"])
    with pytest.raises(ValueError):
        usable_interfaces(["not an address"])
    with pytest.raises(ValueError):
        LanTransport(heartbeat_interval=1.0, dead_after=0.5)
    with pytest.raises(ValueError):
        LanTransport(connect_timeout=0)
