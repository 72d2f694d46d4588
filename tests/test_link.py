"""The LAN link layer without sockets: records, pieces, pacing, lanes, bounds (transport/link.py)."""

from __future__ import annotations

import struct
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from OpenSSL import SSL

from movex_p2p.election.detector import HALF_LIFE, MAX_STRETCH, FailureDetector
from movex_p2p.errors import ChannelClosed, LocalProtocolError, RemoteProtocolError
from movex_p2p.ids import PeerId
from movex_p2p.transport import link as lk
from movex_p2p.transport.link import (
    DATA,
    GOODBYE,
    HEARTBEAT,
    HIGH_WATER,
    MAX_DATAGRAM,
    PART,
    PIECE,
    FrameDecoder,
    PeerLink,
    encode_frame,
    encode_record,
)
from movex_p2p.transport.webrtc import LAN_RTO, RtcSession, quiet_closed_transmit, use_lan_timers

PEER = PeerId("b")

# --- records and frames ----------------------------------------------------------------------


def test_frames_of_any_size_survive_any_split_and_coalescing() -> None:
    frames = [b"hello", b"", b"x" * PIECE, b"y" * (PIECE + 1), bytes(range(256)) * 1000]
    stream = b"".join(encode_frame(frame) for frame in frames) + encode_record(GOODBYE)
    expected = [(DATA, frame) for frame in frames] + [(GOODBYE, b"")]
    for step in (1, 7, 4096, PIECE + 3, len(stream)):
        decoder = FrameDecoder()
        got: list[tuple[int, bytes]] = []
        for i in range(0, len(stream), step):
            got += decoder.feed(stream[i : i + step])
        assert got == expected
        assert decoder.buffered == 0


def test_a_big_frame_travels_as_pieces_of_at_most_one_piece_each() -> None:
    encoded = encode_frame(b"z" * (3 * PIECE + 10))
    kinds = []
    pos = 0
    while pos < len(encoded):
        (size,) = struct.unpack_from(">I", encoded, pos)
        assert size <= PIECE + 1
        kinds.append(encoded[pos + 4])
        pos += 4 + size
    assert kinds == [PART, PART, PART, DATA]


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">I", 0),
        struct.pack(">I", PIECE + 2),  # a record longer than a piece: refused before it is buffered
        struct.pack(">I", 1) + bytes((HEARTBEAT,)),  # heartbeats belong on the datagram lane
        struct.pack(">I", 1) + b"\x09",
    ],
)
def test_malformed_records_are_a_remote_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        FrameDecoder().feed(data)


def test_a_frame_over_the_limit_is_refused_while_it_arrives() -> None:
    decoder = FrameDecoder(max_frame=2 * PIECE)
    decoder.feed(encode_record(PART, bytes(PIECE)) + encode_record(PART, bytes(PIECE)))
    with pytest.raises(RemoteProtocolError):
        decoder.feed(encode_record(DATA, b"!"))
    with pytest.raises(LocalProtocolError):
        encode_record(DATA, bytes(PIECE + 1))


# --- the link over a fake session --------------------------------------------------------------


class FakeSession:
    """Stands in for RtcSession: records what was handed to each channel; drains on demand."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.datagrams: list[bytes] = []
        self.buffered_amount = 0
        self.closed = False
        self.drained = anyio.Event()

    def send(self, data: bytes) -> None:
        if self.closed:
            raise ChannelClosed("closed")
        self.sent.append(data)
        self.buffered_amount += len(data)

    def send_datagram(self, data: bytes) -> None:
        if self.closed:
            raise ChannelClosed("closed")
        self.datagrams.append(data)

    async def wait_drained(self) -> None:
        await self.drained.wait()

    def drain(self) -> None:
        self.buffered_amount = 0
        self.drained.set()
        self.drained = anyio.Event()


def make_link(
    session: FakeSession, *, accept: bool = True, max_frame: int = lk.DEFAULT_MAX_FRAME
) -> tuple[PeerLink, list[bytes], list[PeerId]]:
    delivered: list[bytes] = []
    heard: list[PeerId] = []

    def deliver(peer: PeerId, frame: bytes) -> bool:
        delivered.append(frame)
        return accept

    link = PeerLink(
        peer=PEER,
        name="bob",
        incarnation=1,
        session=session,  # type: ignore[arg-type]
        deliver=deliver,
        heard=heard.append,
        max_frame=max_frame,
    )
    return link, delivered, heard


def decode_all(messages: list[bytes]) -> list[tuple[int, bytes]]:
    decoder = FrameDecoder()
    return [record for message in messages for record in decoder.feed(message)]


async def test_small_frames_go_at_once_coalesced_in_order() -> None:
    session = FakeSession()
    link, _, _ = make_link(session)
    link.send(b"one")
    link.send(b"two")
    assert decode_all(session.sent) == [(DATA, b"one"), (DATA, b"two")]
    assert link.queued == 0


async def test_a_big_frame_is_paced_so_a_datagram_never_waits_behind_more_than_high_water() -> None:
    session = FakeSession()
    link, _, _ = make_link(session)
    big = bytes(range(256)) * (4 * HIGH_WATER // 256)
    link.send(big)
    handed = sum(len(m) for m in session.sent)
    assert HIGH_WATER <= handed < HIGH_WATER + lk.MESSAGE  # the rest waits in the link, not in aiortc
    partial = FrameDecoder()
    assert partial.feed(b"".join(session.sent)) == []
    assert link.queued == len(big) - partial.buffered
    link.send_datagram(b"vote")  # goes out now, whatever the reliable lane holds
    assert session.datagrams == [bytes((DATA,)) + b"vote"]
    link.send(b"after")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(link.run_writer)
            while link.queued:
                session.drain()
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
    assert decode_all(session.sent) == [(DATA, big), (DATA, b"after")]


async def test_a_datagram_too_big_for_one_goes_reliably() -> None:
    session = FakeSession()
    link, _, _ = make_link(session)
    link.send_datagram(bytes(MAX_DATAGRAM + 1))
    assert session.datagrams == []
    assert decode_all(session.sent) == [(DATA, bytes(MAX_DATAGRAM + 1))]


async def test_goodbye_leaves_after_everything_queued_before_it() -> None:
    session = FakeSession()
    link, _, _ = make_link(session)
    link.send(b"last words")
    link.send_goodbye()
    assert decode_all(session.sent) == [(DATA, b"last words"), (GOODBYE, b"")]


async def test_received_frames_and_heartbeats_are_signs_of_life_and_goodbye_is_graceful() -> None:
    session = FakeSession()
    link, delivered, heard = make_link(session)
    link.on_datagram(bytes((HEARTBEAT,)))
    link.on_datagram(bytes((DATA,)) + b"dgram")
    stream = encode_frame(b"x" * (PIECE + 5))
    link.on_data(stream[:100])
    link.on_data(stream[100:])
    assert delivered == [b"dgram", b"x" * (PIECE + 5)]
    assert heard == [PEER] * 4
    link.on_data(encode_record(GOODBYE))
    assert link.dead
    assert link.graceful


@pytest.mark.parametrize(
    ("lane", "data"),
    [
        ("datagram", b""),
        ("datagram", b"\x07"),
        ("datagram", bytes((DATA,)) + bytes(MAX_DATAGRAM + 1)),
        ("data", struct.pack(">I", 0)),
    ],
)
async def test_malformed_input_drops_the_link_not_the_peer(lane: str, data: bytes) -> None:
    session = FakeSession()
    link, delivered, _ = make_link(session)
    (link.on_datagram if lane == "datagram" else link.on_data)(data)
    assert link.dead
    assert not link.graceful
    assert delivered == []
    link.on_data(encode_frame(b"late"))  # nothing more is taken from a dropped link
    assert delivered == []


async def test_a_peer_that_overruns_our_inbox_is_dropped() -> None:
    session = FakeSession()
    link, _, _ = make_link(session, accept=False)
    link.on_data(encode_frame(b"x"))
    assert link.dead
    assert "inbox" in link.reason


async def test_sending_on_a_dead_link_or_over_the_limit_fails_clearly() -> None:
    session = FakeSession()
    link, _, _ = make_link(session, max_frame=10)
    with pytest.raises(LocalProtocolError):
        link.send(bytes(11))
    session.closed = True
    with pytest.raises(ChannelClosed):
        link.send_datagram(b"x")
    assert link.dead
    with pytest.raises(ChannelClosed):
        link.send(b"x")


# --- aiortc's SCTP timers ----------------------------------------------------------------------


async def test_our_associations_get_lan_retransmission_timers() -> None:
    # No packet leaves: a peer connection that never negotiates opens no socket.
    session = RtcSession(addresses=["127.0.0.2"])
    try:
        assert session.lan_timers
        sctp: Any = session._pc.sctp
        low, initial, high = LAN_RTO
        assert sctp._rto == initial
        sctp._update_rto(0.001)  # a 1 ms round trip
        assert sctp._rto == low
        sctp._update_rto(5.0)
        assert sctp._rto == high
    finally:
        await session.close()


def test_use_lan_timers_refuses_an_object_without_aiortc_internals() -> None:
    assert use_lan_timers(object()) is False


def test_a_stalled_process_does_not_declare_its_peers_dead() -> None:
    detector = FailureDetector(timeout=1.0)
    detector.heard(PEER, 0.0)
    detector.stalled(2.0)  # our loop ran nothing for 2 s: the peer's heartbeats wait unread
    assert detector.expired(2.5) == []
    assert detector.expired(3.1) == [(PEER, 1.0)]  # silent for a second of our own running time


def test_a_peer_that_kept_long_silences_lately_is_given_longer_and_a_regular_one_is_not() -> None:
    # 12 peers on 2 vCPUs: a starved master went quiet 0.5-0.8 s at a time, then over 0.9 s, and
    # its links were dropped and dialed again, again and again (issue 15).
    detector = FailureDetector(timeout=1.0)
    regular, starved = PeerId("r"), PeerId("s")
    for i in range(21):
        detector.heard(regular, i * 0.1)
    for at in (0.0, 0.8, 1.0, 1.6, 2.0):  # silences of 0.8 and 0.6 s
        detector.heard(starved, at)
    assert detector.limit(regular) == 1.0
    stretched = detector.limit(starved)
    assert 1.5 < stretched <= 1.6  # PATIENCE x its longest silence (0.8 s), fading with HALF_LIFE
    assert detector.expired(3.05) == [(regular, 1.0)]  # both died at 2.0: the regular one as fast as ever
    assert detector.expired(3.45) == []
    assert detector.expired(3.65) == [(starved, stretched)]
    detector.heard(starved, 10.0)
    detector.heard(starved, 20.0)  # a silence of 10 s: the stretch stops at MAX_STRETCH
    assert detector.limit(starved) == MAX_STRETCH
    t = 20.0
    while t < 20.0 + HALF_LIFE:  # regular again for HALF_LIFE: half of the stretch is gone
        t += 0.1
        detector.heard(starved, t)
    assert detector.limit(starved) == pytest.approx(1.0 + (MAX_STRETCH - 1.0) / 2, abs=0.02)


async def test_a_retransmission_after_the_connection_closed_is_quiet_and_other_errors_still_raise() -> None:
    class Association:
        def __init__(self, error: Exception) -> None:
            self.error = error
            self.sent = 0

        async def _transmit(self) -> None:
            self.sent += 1
            raise self.error

    closed = Association(ConnectionError("Cannot send encrypted data, not connected"))
    assert quiet_closed_transmit(closed)
    await closed._transmit()  # as aiortc's T3 timer runs it: a task nobody awaits
    assert closed.sent == 1
    shut = Association(SSL.Error([("SSL routines", "", "protocol is shutdown")]))  # seen in liar's dice
    assert quiet_closed_transmit(shut)
    await shut._transmit()
    assert shut.sent == 1
    other = Association(SSL.Error([("SSL routines", "", "bad record mac")]))
    assert quiet_closed_transmit(other)
    with pytest.raises(SSL.Error):
        await other._transmit()
    broken = Association(ValueError("a bug"))
    assert quiet_closed_transmit(broken)
    with pytest.raises(ValueError, match="a bug"):
        await broken._transmit()
    assert quiet_closed_transmit(object()) is False


async def test_a_session_guards_its_association() -> None:
    session = RtcSession(addresses=[])
    try:
        assert session.lan_timers
        sctp = session._pc.sctp
        assert sctp is not None
        assert sctp._transmit.__name__ == "transmit_unless_closed"
    finally:
        await session.close()
