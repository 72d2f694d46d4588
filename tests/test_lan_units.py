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
from movex_p2p.transport.discovery import Announcement, parse_txt
from movex_p2p.transport.lan import LanEndpoint, LanTransport, usable_interfaces
from movex_p2p.transport.signaling import (
    Answer,
    Busy,
    Challenge,
    Contact,
    Exchange,
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
A = Contact(peer=PeerId("a"), addresses=("10.0.0.1",), port=5000)
B = Contact(peer=PeerId("b"), addresses=("10.0.0.2", "192.168.7.2"), port=6000)
C = Contact(peer=PeerId("c"), addresses=("10.0.0.3",), port=7000)
OFFER = Exchange(sdp=OFFER_SDP, me=A, members=(C,))
ANSWER = Exchange(sdp=ANSWER_SDP, me=B)


def hello() -> Hello:
    return new_hello(sender=PeerId("a"), receiver=PeerId("b"), name="alice", incarnation=7)


# --- codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        hello(),
        Challenge(peer=PeerId("b"), name="bob", incarnation=9, nonce=b"n" * 16, proof=b"p" * 32),
        Offer(body=OFFER, mac=b"m" * 32),
        Answer(body=ANSWER, mac=b"m" * 32),
        Busy(mac=b"m" * 32),
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
        b'{"t": "challenge", "id": "b", "name": "", "inc": -1, "nonce": "'
        + b"0" * 32
        + b'", "proof": "'
        + b"0" * 64
        + b'"}',
        b'{"t": "offer", "sdp": "x", "me": ["a", [], 1], "peers": [], "mac": "zz"}',
        b'{"t": "answer", "sdp": 3, "me": ["a", [], 1], "peers": [], "mac": "' + b"0" * 64 + b'"}',
    ],
)
def test_malformed_signaling_is_a_remote_protocol_error(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(payload)


def test_oversized_signaling_message_is_refused_on_encode() -> None:
    with pytest.raises(ValueError):
        encode(Offer(body=Exchange(sdp="x" * signaling.MAX_MESSAGE, me=A), mac=b"m" * 32))


# --- keys and MACs -------------------------------------------------------------------------


def test_key_depends_on_room_and_secret_and_none_is_the_well_known_empty_secret() -> None:
    assert derive_key("room", "secret") != derive_key("room", "other")
    assert derive_key("room", "secret") != derive_key("other", "secret")
    assert derive_key("room", None) == derive_key("room", "")
    assert len(KEY) == 32


def challenge_for(h: Hello) -> Challenge:
    return make_challenge(KEY, h, me=PeerId("b"), name="bob", incarnation=3)


def test_macs_verify_with_the_right_key() -> None:
    h = hello()
    challenge = challenge_for(h)
    verify_challenge(KEY, h, challenge)
    offer = make_offer(KEY, h, challenge, OFFER)
    verify_offer(KEY, h, challenge, offer)
    answer = make_answer(KEY, h, challenge, OFFER, ANSWER)
    verify_answer(KEY, h, challenge, OFFER, answer)


def test_macs_fail_with_a_wrong_key_or_any_tampered_field() -> None:
    h = hello()
    wrong = derive_key("room", "guess")
    challenge = challenge_for(h)
    with pytest.raises(AuthenticationFailed):
        verify_challenge(wrong, h, challenge)
    for forged in (dataclasses.replace(challenge, peer=PeerId("z")), dataclasses.replace(challenge, name="eve")):
        with pytest.raises(AuthenticationFailed):
            verify_challenge(KEY, h, forged)  # the listener's id and name are bound to its proof
    offer = make_offer(KEY, h, challenge, OFFER)

    def body(**changes: object) -> Offer:
        return dataclasses.replace(offer, body=dataclasses.replace(OFFER, **changes))  # type: ignore[arg-type]

    tampered = [
        (h, challenge, body(sdp=OFFER_SDP.replace("AA", "AB"))),  # fingerprint
        (h, challenge, body(members=())),  # the peer exchange is authenticated too
        (h, challenge, body(members=(dataclasses.replace(C, port=7001),))),
        (h, challenge, body(me=dataclasses.replace(A, addresses=("10.6.6.6",)))),
        (dataclasses.replace(h, nonce=b"x" * 16), challenge, offer),  # replayed with another nonce
        (h, dataclasses.replace(challenge, nonce=b"y" * 16), offer),
        (dataclasses.replace(h, sender=PeerId("c")), challenge, offer),  # another identity
        (dataclasses.replace(h, receiver=PeerId("")), challenge, offer),
        (dataclasses.replace(h, incarnation=8), challenge, offer),
        (h, dataclasses.replace(challenge, incarnation=4), offer),
    ]
    for hello_, challenge_, offer_ in tampered:
        with pytest.raises(AuthenticationFailed):
            verify_offer(KEY, hello_, challenge_, offer_)
    answer = make_answer(KEY, h, challenge, OFFER, ANSWER)
    with pytest.raises(AuthenticationFailed):
        verify_answer(KEY, h, challenge, dataclasses.replace(OFFER, sdp=OFFER_SDP + "x"), answer)  # binds the offer
    with pytest.raises(AuthenticationFailed):
        verify_answer(KEY, h, challenge, OFFER, dataclasses.replace(answer, body=dataclasses.replace(ANSWER, sdp="x")))
    with pytest.raises(AuthenticationFailed):
        verify_answer(
            KEY, h, challenge, OFFER, dataclasses.replace(answer, body=dataclasses.replace(ANSWER, members=(C,)))
        )


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


async def handshake(dialer_key: bytes, listener_key: bytes, *, receiver: str = "b") -> tuple[list[str], object, object]:
    calls: list[str] = []
    outcome: dict[str, object] = {}
    dialer_end, listener_end = pipe_pair()

    async def create_offer(challenge: Challenge) -> Exchange:
        calls.append(f"offer to {challenge.peer}")
        return OFFER

    async def create_answer(h: Hello, offer: Exchange) -> Exchange:
        calls.append("answer")
        assert offer == OFFER
        return ANSWER

    h = new_hello(sender=PeerId("a"), receiver=PeerId(receiver) or None, name="alice", incarnation=7)

    async def dial() -> None:
        try:
            outcome["dialer"] = await run_dialer(dialer_end, key=dialer_key, hello=h, create_offer=create_offer)
        except Exception as exc:
            outcome["dialer"] = exc
        finally:
            await dialer_end.aclose()

    async def listen() -> None:
        try:
            outcome["listener"] = await run_listener(
                listener_end, key=listener_key, me=PeerId("b"), name="bob", incarnation=5, create_answer=create_answer
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


@pytest.mark.parametrize("receiver", ["b", ""])  # by id (mDNS, peer exchange), or by address
async def test_handshake_with_the_right_key_exchanges_sdps_and_contacts(receiver: str) -> None:
    calls, dialer, listener = await handshake(KEY, KEY, receiver=receiver)
    assert calls == ["offer to b", "answer"]
    assert dialer == signaling.DialResult(peer=PeerId("b"), name="bob", incarnation=5, answer=ANSWER)
    assert isinstance(listener, Hello)
    assert listener.sender == "a"


async def test_a_listener_that_holds_the_pair_already_turns_the_dialer_away() -> None:
    dialer_end, listener_end = pipe_pair()
    h = new_hello(sender=PeerId("a"), receiver=None, name="alice", incarnation=7)

    async def create_offer(challenge: Challenge) -> Exchange:
        return OFFER

    async def busy(hello: Hello, offer: Exchange) -> Exchange:
        raise signaling.Declined(hello.sender)

    async with anyio.create_task_group() as tg:

        async def listen() -> None:
            with pytest.raises(signaling.Declined):
                await run_listener(listener_end, key=KEY, me=PeerId("b"), name="", incarnation=1, create_answer=busy)

        tg.start_soon(listen)
        with pytest.raises(signaling.Declined) as declined:
            await run_dialer(dialer_end, key=KEY, hello=h, create_offer=create_offer)
    await dialer_end.aclose()
    await listener_end.aclose()
    assert declined.value.peer == "b"
    challenge = challenge_for(h)
    with pytest.raises(AuthenticationFailed):  # a Busy is authenticated like the rest
        signaling.verify_busy(KEY, h, challenge, OFFER, Busy(mac=b"m" * 32))


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


async def test_a_dial_meant_for_another_peer_is_refused() -> None:
    calls, dialer, listener = await handshake(KEY, KEY, receiver="c")
    assert calls == []
    assert isinstance(listener, RemoteProtocolError)
    assert "meant for" in str(listener)
    assert isinstance(dialer, RemoteProtocolError)


async def never(h: Hello, offer: Exchange) -> Exchange:
    raise AssertionError("must not be called")


async def test_listener_refuses_garbage_and_accepts_either_direction() -> None:
    for payload in [b"\xff\xff\xff\xff", b"\x00\x00\x00\x02{}", encode(Offer(body=OFFER, mac=b"m" * 32))]:
        ours, theirs = pipe_pair()
        await theirs.send(payload)
        await theirs.send_eof()
        with pytest.raises(RemoteProtocolError):
            await run_listener(ours, key=KEY, me=PeerId("b"), name="", incarnation=1, create_answer=never)
        await ours.aclose()
        await theirs.aclose()
    ours, theirs = pipe_pair()
    upward = new_hello(sender=PeerId("z"), receiver=PeerId("b"), name="", incarnation=1)  # a higher id may dial
    await theirs.send(encode(upward))
    await theirs.send_eof()
    with pytest.raises(RemoteProtocolError, match="closed mid-exchange"):  # it got a Challenge, then hung up
        await run_listener(ours, key=KEY, me=PeerId("b"), name="", incarnation=1, create_answer=never)
    assert isinstance(decode((await theirs.receive())[4:]), Challenge)
    await ours.aclose()
    await theirs.aclose()


def contact_json(peer: object = "c", addresses: object = ("10.0.0.3",), port: object = 7000) -> list[object]:
    return [peer, list(addresses) if isinstance(addresses, tuple) else addresses, port]


@pytest.mark.parametrize(
    "members",
    [
        [contact_json()] * (signaling.MAX_MEMBERS + 1),  # too many
        [contact_json(addresses=("10.0.0.3",) * (signaling.MAX_ADDRESSES + 1))],
        [contact_json(addresses=("10.0.0.300",))],
        [contact_json(addresses=("010.0.0.3",))],  # not canonical: the MAC could not be recomputed
        [contact_json(addresses=("::1",))],
        [contact_json(addresses=("gamebox.local",))],  # never a name: we resolve nothing a peer tells us
        [contact_json(port=0)],
        [contact_json(port=70000)],
        [contact_json(port=True)],
        [contact_json(peer="")],
        [contact_json(peer="x" * 300)],
        [contact_json(peer="a\nb")],
        [contact_json()[:2]],
        [{"id": "c"}],
        "c",
    ],
)
def test_hostile_peer_exchange_is_a_remote_protocol_error(members: object) -> None:
    import json

    body = {"t": "offer", "sdp": "x", "me": contact_json("a"), "peers": members, "mac": "00" * 32}
    with pytest.raises(RemoteProtocolError):
        decode(json.dumps(body).encode())


def test_deeply_nested_signaling_is_a_remote_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        decode(b'{"t": "offer", "peers": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")


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


def test_a_found_peer_counts_as_joining_while_it_answers_and_never_forever() -> None:
    """At 10 % loss a link can take longer than two connect timeouts: a peer that answered our
    handshakes still counts (the room must not elect without it), but only for so long."""
    endpoint = LanEndpoint(LanTransport(connect_timeout=5.0), peer_id=PeerId("a"), name="a", room="r", secret=None)
    try:
        endpoint._opened_at = 0.0
        for peer in ("slow", "gone"):
            endpoint._known[PeerId(peer)] = Announcement(
                peer=PeerId(peer), name=peer, room="r", version=1, incarnation=1, port=1, addresses=("10.0.0.2",)
            )
            endpoint._found_at[peer] = 1.0
        assert endpoint._still_joining(0.1) == {"?", "slow", "gone"}  # "?": discovery has just begun
        assert endpoint._still_joining(5.0) == {"slow", "gone"}
        endpoint._answered_at["slow"] = 9.0  # it answered a handshake; its link is still setting up
        assert endpoint._still_joining(12.0) == {"slow"}  # the silent one had its two connect timeouts
        endpoint._answered_at["slow"] = 28.0
        assert endpoint._still_joining(31.5) == set()  # answering forever yet never linking: no longer counted
    finally:  # its event stream is made with it
        endpoint._events_tx.close()
        endpoint._events_rx.close()
