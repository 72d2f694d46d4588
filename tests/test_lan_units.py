"""LAN transport pieces that need no socket: signaling codec and MACs, channel framing, SDP checks."""

from __future__ import annotations

import dataclasses
import random
import struct
from collections.abc import Callable
from typing import Any, cast

import anyio
import pytest

from movex_p2p.errors import AuthenticationFailed, RemoteProtocolError
from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId
from movex_p2p.lobby import Lobby
from movex_p2p.testing.pipes import Pipe, pipe_pair
from movex_p2p.transport import signaling
from movex_p2p.transport.discovery import Announcement, parse_txt
from movex_p2p.transport.lan import _LOBBY_SPACING, LanTransport, usable_interfaces
from movex_p2p.transport.meshcore import MeshCore
from movex_p2p.transport.signaling import (
    Answer,
    Busy,
    Challenge,
    Confirm,
    Contact,
    Exchange,
    Hello,
    Offer,
    decode,
    derive_key,
    encode,
    run_dialer,
    run_listener,
)
from movex_p2p.transport.webrtc import candidate_types, check_host_only

KEY = derive_key("room", "secret")
ALICE, BOB, EVE = Identity(b"a" * 32), Identity(b"b" * 32), Identity(b"e" * 32)
OFFER_SDP = "v=0\r\na=fingerprint:sha-256 AA:BB\r\na=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n"
ANSWER_SDP = "v=0\r\na=fingerprint:sha-256 CC:DD\r\na=candidate:2 1 udp 1 10.0.0.2 6000 typ host\r\n"
A = Contact(peer=ALICE.id, addresses=("10.0.0.1",), port=5000)
B = Contact(peer=BOB.id, addresses=("10.0.0.2", "192.168.7.2"), port=6000)
C = Contact(peer=PeerId("c"), addresses=("10.0.0.3",), port=7000)
OFFER = Exchange(sdp=OFFER_SDP, me=A, members=(C,))
ANSWER = Exchange(sdp=ANSWER_SDP, me=B)
N16, K32, P33, M32, S64 = b"n" * 16, b"k" * 32, b"S" + b"p" * 32, b"m" * 32, b"s" * 64


# --- codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        Hello(version=3, sender=ALICE.id, receiver=BOB.id, name="alice", incarnation=7, nonce=N16, key=K32, pake=P33),
        Challenge(peer=BOB.id, name="bob", incarnation=9, nonce=N16, key=K32, pake=P33, proof=M32, sig=S64),
        Offer(body=OFFER, mac=M32, sig=S64),
        Answer(body=ANSWER, mac=M32, sig=S64),
        Busy(mac=M32, sig=S64),
        Confirm(mac=M32, sig=S64),
        signaling.Refusal(reason="too many failed handshakes", retry=8),
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
        b'{"t": ["hello"]}',
        b'{"t": "hello", "v": 1, "from": 1, "to": "b", "name": "", "inc": 1, "nonce": "00"}',
        b'{"t": "hello", "v": true, "from": "a", "to": "b", "name": "", "inc": 1, "nonce": "' + b"0" * 32 + b'"}',
        b'{"t": "challenge", "id": "b", "name": "", "inc": -1, "nonce": "'
        + b"0" * 32
        + b'", "proof": "'
        + b"0" * 64
        + b'"}',
        b'{"t": "offer", "sdp": "x", "me": ["a", [], 1], "peers": [], "mac": "zz"}',
        b'{"t": "answer", "sdp": 3, "me": ["a", [], 1], "peers": [], "mac": "' + b"0" * 64 + b'"}',
        b'{"t": "confirm", "mac": "' + b"0" * 64 + b'", "sig": "00"}',
        b'{"t": "hello", "v": ' + b"9" * 5000 + b"}",
        b"[" * 60_000,  # 0.1: RecursionError escaped decode and killed the peer
        b"{" * 30 + b"}" * 30,
        b'{"t": "refused", "why": "x"}',
        b'{"t": "refused", "why": "x", "retry": -1}',
        b'{"t": "refused", "why": "x", "retry": 3601}',
        b'{"t": "refused", "why": "x", "retry": true}',
        b'{"t": "refused", "why": "x", "retry": 1.5}',
        b'{"t": "refused", "why": "a\\nb", "retry": 1}',  # not printable
        b'{"t": "refused", "why": "' + b"x" * 201 + b'", "retry": 1}',
        b'{"t": "refused", "why": 3, "retry": 1}',
    ],
)
def test_malformed_signaling_is_a_remote_protocol_error(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(payload)


def test_oversized_signaling_message_is_refused_on_encode() -> None:
    with pytest.raises(ValueError):
        encode(Offer(body=Exchange(sdp="x" * signaling.MAX_MESSAGE, me=A), mac=M32, sig=S64))


# --- keys ----------------------------------------------------------------------------------


def test_key_depends_on_room_and_secret_and_none_is_the_well_known_empty_secret() -> None:
    assert derive_key("room", "secret") != derive_key("room", "other")
    assert derive_key("room", "secret") != derive_key("other", "secret")
    assert derive_key("room", None) == derive_key("room", "")
    assert len(KEY) == 32


def test_the_pake_agrees_only_on_the_same_room_key() -> None:
    a, b, c = signaling.Pake(KEY), signaling.Pake(KEY), signaling.Pake(derive_key("room", "guess"))
    assert a.message != b.message  # fresh per exchange: a captured one tells nothing to replay
    assert a.finish(b.message) == b.finish(a.message)
    d = signaling.Pake(KEY)
    assert c.finish(d.message) != d.finish(c.message)
    for junk in (b"", b"S" + bytes(32), b"x" * 33):
        with pytest.raises(AuthenticationFailed):
            signaling.Pake(KEY).finish(junk)


# --- the handshake over an in-memory byte stream --------------------------------------------


class _Impostor:
    """Claims ``victim``'s id but signs with its own key (a room member taking over an id)."""

    def __init__(self, victim: Identity, own: Identity) -> None:
        self.id, self.public_key, self.sign = victim.id, own.public_key, own.sign


Tamper = Callable[[signaling.SignalMessage], signaling.SignalMessage]


async def handshake(
    dialer_key: bytes,
    listener_key: bytes,
    *,
    receiver: PeerId | None = BOB.id,
    dialer: object = ALICE,
    listener: object = BOB,
    tamper: Tamper | None = None,
) -> tuple[list[str], object, object]:
    """Run both roles; ``tamper`` rewrites every message on the way (a machine in the middle)."""
    calls: list[str] = []
    outcome: dict[str, object] = {}
    dialer_end, near = pipe_pair()
    far, listener_end = pipe_pair()

    async def create_offer(challenge: Challenge) -> Exchange:
        calls.append(f"offer to {challenge.peer}")
        return OFFER

    async def create_answer(h: Hello, offer: Exchange) -> Exchange:
        calls.append("answer")
        return ANSWER

    async def dial() -> None:
        try:
            outcome["dialer"] = await run_dialer(
                dialer_end,
                key=dialer_key,
                identity=dialer,  # type: ignore[arg-type]
                receiver=receiver,
                name="alice",
                incarnation=7,
                create_offer=create_offer,
            )
        except Exception as exc:
            outcome["dialer"] = exc
        finally:
            await dialer_end.aclose()

    async def listen() -> None:
        try:
            outcome["listener"] = await run_listener(
                listener_end,
                key=listener_key,
                identity=listener,  # type: ignore[arg-type]
                name="bob",
                incarnation=5,
                create_answer=create_answer,
            )
        except Exception as exc:
            outcome["listener"] = exc
        finally:
            await listener_end.aclose()

    async def relay(source: Pipe, sink: Pipe) -> None:
        try:
            while True:
                frame = await source.receive()
                if tamper is not None:
                    frame = encode(tamper(decode(frame[4:])))
                await sink.send(frame)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            await sink.aclose()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(dial)
            tg.start_soon(listen)
            tg.start_soon(relay, near, far)
            tg.start_soon(relay, far, near)
    return calls, outcome["dialer"], outcome["listener"]


@pytest.mark.parametrize("receiver", [BOB.id, None])  # by id (mDNS, peer exchange), or by address
async def test_handshake_with_the_right_key_exchanges_sdps_and_contacts(receiver: PeerId | None) -> None:
    calls, dialer, listener = await handshake(KEY, KEY, receiver=receiver)
    assert calls == [f"offer to {BOB.id}", "answer"]
    assert dialer == signaling.DialResult(peer=BOB.id, name="bob", incarnation=5, answer=ANSWER)
    assert isinstance(listener, Hello)
    assert listener.sender == ALICE.id
    assert listener.key == ALICE.public_key


async def test_a_listener_that_holds_the_pair_already_turns_the_dialer_away() -> None:
    dialer_end, listener_end = pipe_pair()

    async def create_offer(challenge: Challenge) -> Exchange:
        return OFFER

    async def busy(hello: Hello, offer: Exchange) -> Exchange:
        raise signaling.Declined(hello.sender)

    async with anyio.create_task_group() as tg:

        async def listen() -> None:
            with pytest.raises(signaling.Declined):
                await run_listener(listener_end, key=KEY, identity=BOB, name="", incarnation=1, create_answer=busy)

        tg.start_soon(listen)
        with pytest.raises(signaling.Declined) as declined:
            await run_dialer(
                dialer_end, key=KEY, identity=ALICE, receiver=None, name="a", incarnation=7, create_offer=create_offer
            )
    await dialer_end.aclose()
    await listener_end.aclose()
    assert declined.value.peer == BOB.id


async def test_a_refused_dialer_is_told_why_and_when_to_retry() -> None:
    """0.3 hung up on a refused address without a word: the dialer saw a cut-short handshake."""
    dialer_end, listener_end = pipe_pair()

    async def create_offer(challenge: Challenge) -> Exchange:
        raise AssertionError("a refused dialer never gets a Challenge")

    async def listen() -> None:
        refusal = signaling.Refusal(reason="too many failed handshakes", retry=8)
        async with listener_end:
            await signaling.refuse(listener_end, refusal, linger=5)  # returns once the dialer hung up

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            with pytest.raises(signaling.Refused) as refused:
                async with dialer_end:
                    await run_dialer(
                        dialer_end,
                        key=KEY,
                        identity=ALICE,
                        receiver=BOB.id,
                        name="a",
                        incarnation=7,
                        create_offer=create_offer,
                    )
    assert isinstance(refused.value, AuthenticationFailed)
    assert (refused.value.reason, refused.value.retry_after) == ("too many failed handshakes", 8)
    assert str(refused.value) == f"the listener {BOB.id} refused us: too many failed handshakes, retry after 8 s"


async def test_a_refusal_gives_up_on_a_dialer_that_never_hangs_up() -> None:
    listener_end, dialer_end = pipe_pair()
    refusal = signaling.Refusal(reason="r", retry=1)
    with anyio.fail_after(5):
        await signaling.refuse(listener_end, refusal, linger=0.05)
        assert decode((await dialer_end.receive())[4:]) == refusal
    await listener_end.aclose()
    await dialer_end.aclose()


async def test_a_listener_without_the_secret_never_sees_an_offer() -> None:
    """And it is told: 0.3 hung up on it, and a newcomer took that for a cut-short handshake
    (it could then be ready alone before its own dial found the secrets differ, issue 16)."""
    calls, dialer, listener = await handshake(KEY, derive_key("room", "guess"))
    assert calls == []  # the dialer made no offer: nothing revealed
    assert isinstance(dialer, AuthenticationFailed)
    assert isinstance(listener, signaling.Refused)  # an AuthenticationFailed
    assert str(listener) == (
        f"dialer {ALICE.id} refused us: your proof of the room secret failed (a wrong room secret?)"
    )


async def test_a_dialer_without_the_secret_never_gets_an_answer() -> None:
    calls, dialer, listener = await handshake(derive_key("room", "guess"), KEY)
    assert "answer" not in calls
    assert isinstance(dialer, AuthenticationFailed)  # it cannot even verify the listener's proof
    assert isinstance(listener, signaling.Refused)  # and tells the listener so


async def test_a_dial_meant_for_another_peer_is_refused() -> None:
    calls, dialer, listener = await handshake(KEY, KEY, receiver=PeerId("c"))
    assert calls == []
    assert isinstance(listener, RemoteProtocolError)
    assert "meant for" in str(listener)
    assert isinstance(dialer, RemoteProtocolError)


async def test_a_member_cannot_answer_for_another_peers_id() -> None:
    """0.1 proved the room key only: any member could claim any id (and take over its links)."""
    calls, dialer, listener = await handshake(KEY, KEY, listener=_Impostor(BOB, EVE))
    assert calls == []
    assert isinstance(dialer, AuthenticationFailed)
    assert "not derived from its public key" in str(dialer) or "bad signature" in str(dialer)
    calls, dialer, listener = await handshake(KEY, KEY, dialer=_Impostor(ALICE, EVE))
    assert "answer" not in calls
    assert isinstance(listener, AuthenticationFailed)


def _replace_sdp(message: signaling.SignalMessage) -> signaling.SignalMessage:
    if isinstance(message, Offer | Answer):
        return dataclasses.replace(message, body=dataclasses.replace(message.body, sdp=message.body.sdp + "x"))
    return message


def _replace_members(message: signaling.SignalMessage) -> signaling.SignalMessage:
    if isinstance(message, Offer):
        return dataclasses.replace(message, body=dataclasses.replace(message.body, members=()))
    return message


def _replace_nonce(message: signaling.SignalMessage) -> signaling.SignalMessage:
    return dataclasses.replace(message, nonce=b"x" * 16) if isinstance(message, Hello | Challenge) else message


def _replace_incarnation(message: signaling.SignalMessage) -> signaling.SignalMessage:
    return dataclasses.replace(message, incarnation=99) if isinstance(message, Challenge) else message


@pytest.mark.parametrize("tamper", [_replace_sdp, _replace_members, _replace_nonce, _replace_incarnation])
async def test_anything_changed_in_the_middle_fails_the_handshake(tamper: Tamper) -> None:
    _, dialer, listener = await handshake(KEY, KEY, tamper=tamper)
    assert isinstance(dialer, AuthenticationFailed | RemoteProtocolError) or isinstance(
        listener, AuthenticationFailed | RemoteProtocolError
    )
    assert not isinstance(listener, Hello) or not isinstance(dialer, signaling.DialResult)


async def never(h: Hello, offer: Exchange) -> Exchange:
    raise AssertionError("must not be called")


async def test_listener_refuses_garbage_and_accepts_either_direction() -> None:
    for payload in [b"\xff\xff\xff\xff", b"\x00\x00\x00\x02{}", encode(Offer(body=OFFER, mac=M32, sig=S64))]:
        ours, theirs = pipe_pair()
        await theirs.send(payload)
        await theirs.send_eof()
        with pytest.raises(RemoteProtocolError):
            await run_listener(ours, key=KEY, identity=BOB, name="", incarnation=1, create_answer=never)
        await ours.aclose()
        await theirs.aclose()
    ours, theirs = pipe_pair()
    pake = signaling.Pake(KEY)
    zed = Identity(b"z" * 32)
    upward = Hello(
        version=signaling.PROTOCOL_VERSION,
        sender=zed.id,
        receiver=BOB.id,
        name="",
        incarnation=1,
        nonce=N16,
        key=zed.public_key,
        pake=pake.message,
    )
    await theirs.send(encode(upward))
    await theirs.send_eof()
    with pytest.raises(RemoteProtocolError, match="closed mid-exchange"):  # it got a Challenge, then hung up
        await run_listener(ours, key=KEY, identity=BOB, name="", incarnation=1, create_answer=never)
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

    body = {"t": "offer", "sdp": "x", "me": contact_json("a"), "peers": members, "mac": "00" * 32, "sig": "00" * 64}
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
    hostile: list[dict[bytes, bytes | None]] = [
        {**props, b"sig": b"0"},
        {**props, b"sig": b"70000"},
        {**props, b"inc": "\uff11\uff12".encode()},  # int() takes these digits; a TXT record must not
        {**props, b"inc": b"9" * 5000},
        {**props, b"inc": b"-1"},
        {**props, b"id": b""},
        {**props, b"id": b"a\nb"},
        {**props, b"name": b"\xff\xfe"},
        {**props, b"room": b"r" * 300},
    ]
    for bad in hostile:
        with pytest.raises(ValueError):
            parse_txt(bad, ["10.0.0.1"], 5000)


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
    mesh = MeshCore(PeerId("a"), connect_timeout=5.0, dead_after=0.9, heartbeat_interval=0.1, rng=random.Random(0))
    mesh.open(0.0, interfaces=["10.0.0.1"], port=1)
    none: frozenset[PeerId] = frozenset()
    for peer in ("slow", "gone"):
        record = Announcement(
            peer=PeerId(peer), name=peer, room="r", version=1, incarnation=1, port=1, addresses=("10.0.0.2",)
        )
        mesh.announced(record, 1.0)
    assert mesh.still_joining(0.1, linked=none) == {"?", "slow", "gone"}  # "?": discovery has just begun
    assert mesh.still_joining(5.0, linked=none) == {"slow", "gone"}
    mesh.answered(PeerId("slow"), 9.0)  # it answered a handshake; its link is still setting up
    assert mesh.still_joining(12.0, linked=none) == {"slow"}  # the silent one had its two connect timeouts
    mesh.answered(PeerId("slow"), 28.0)
    assert mesh.still_joining(31.5, linked=none) == set()  # answering forever yet never linking: no longer counted


class _LobbyDiscovery:
    """Stands in for :class:`~movex_p2p.transport.discovery.Discovery`: records the lobby hints announced, and when."""

    def __init__(self) -> None:
        self.announced: list[tuple[float, bool]] = []
        self.changed = anyio.Event()

    async def update_lobby(self, lobby: Lobby) -> None:
        self.announced.append((anyio.current_time(), lobby.started))
        self.changed.set()


async def test_the_lobby_hints_are_announced_when_the_room_starts_and_a_burst_of_changes_sparingly() -> None:
    """No polling: nothing is announced until the endpoint is told the room started, then at once;
    changes told while an announcement is fresh go out once, ``_LOBBY_SPACING`` later (the last state)."""
    endpoint = LanTransport(interfaces=["127.0.0.1"]).connect(
        peer_id=ALICE.id, name="a", room="r", secret=None, identity=ALICE
    )
    discovery = _LobbyDiscovery()
    async with anyio.create_task_group() as tg:
        tg.start_soon(endpoint._lobby_loop, cast(Any, discovery))
        await anyio.sleep(0.1)
        assert discovery.announced == []  # not started, as announced at first
        told = anyio.current_time()
        endpoint.room_started(True)
        with anyio.fail_after(5):
            await discovery.changed.wait()
        ((first, started),) = discovery.announced
        assert started is True
        assert first - told < 0.25  # at once (a poll every 0.5 s would take 0.4 s here)
        discovery.changed = anyio.Event()
        for started in (False, True, False):
            endpoint.room_started(started)
        with anyio.fail_after(5):
            await discovery.changed.wait()
        (_, (second, started)) = discovery.announced
        assert started is False
        assert second - first >= _LOBBY_SPACING - 0.01
        endpoint.room_started(False)  # no change: nothing to announce
        await anyio.sleep(_LOBBY_SPACING + 0.1)
        assert len(discovery.announced) == 2
        tg.cancel_scope.cancel()
    await endpoint.__aexit__(None, None, None)  # never opened: this closes its event streams
