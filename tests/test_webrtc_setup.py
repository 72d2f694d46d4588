"""Link setup at loss: aiortc's INIT tag, DTLS handshake copies, ICE check timeouts (transport/webrtc.py).

The SCTP and DTLS tests run aiortc's real transports in one process over fake lower layers
that lose chosen datagrams (no socket); the last test opens two real sessions inside a private
network namespace.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from aioice import stun
from aioice.candidate import Candidate
from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import RTCCertificate, RTCDtlsParameters, RTCDtlsTransport
from aiortc.rtcsctptransport import RTCSctpTransport
from anyio.abc import TaskGroup

from movex_p2p.testing.fake_rtc import Drop, FakeDtls, FakeIce
from movex_p2p.testing.netns import SETUP, child_env, unavailable_reason
from movex_p2p.transport.webrtc import (
    DTLS_COPIES,
    DTLS_COPY_GAP,
    STUN_RTO,
    T1_BACKOFF,
    T1_TRIES,
    RtcSession,
    SourceFilter,
    accept_only_selected_source,
    backoff_init_timer,
    copy_handshake_flights,
    init_with_tag_zero,
    lan_stun_retries,
)

INIT, INIT_ACK = 1, 2


# --- SCTP: a retransmitted INIT must carry tag 0 ------------------------------------------------


def drop_first_init_acks() -> Drop:
    """Lose the first INIT-ACK each way: the INIT collision of issue 18 (RFC 8841: both send INIT)."""
    dropped: set[str] = set()

    def drop(sender: str, packet: bytes) -> bool:
        if packet[12] == INIT_ACK and sender not in dropped:
            dropped.add(sender)
            return True
        return False

    return drop


async def settled_pair(
    tg: TaskGroup, drop: Drop, prepare: Callable[[Any], None]
) -> tuple[list[Any], FakeDtls, FakeDtls]:
    """Two associations over in-memory DTLS that loses what ``drop`` says, each ``prepare``d, once
    both opened or gave up; and their DTLS ends."""
    a = FakeDtls("a", "client", tg, drop)
    b = FakeDtls("b", "server", tg, drop)
    a.peer, b.peer = b, a
    ends: list[Any] = [RTCSctpTransport(a), RTCSctpTransport(b)]  # type: ignore[arg-type]
    settled = anyio.Event()

    def settles(sctp: Any) -> None:
        # aiortc emits no event when an association opens or gives up; both go through its _set_state
        set_state = sctp._set_state

        def observed(state: Any) -> None:
            set_state(state)
            if all(s.state in ("connected", "closed") for s in ends):
                settled.set()

        sctp._set_state = observed

    for sctp in ends:
        prepare(sctp)
        settles(sctp)
    for sctp in ends:
        tg.start_soon(sctp.start, None, 5000)
    with anyio.fail_after(10):
        await settled.wait()
    return ends, a, b


async def associate(*, fixed: bool) -> tuple[str, str, list[int]]:
    """Two associations whose INIT-ACKs are both lost; their states once settled, and the tags of
    every INIT that was sent after the first one of each side."""

    def prepare(sctp: Any) -> None:
        sctp._rto = 0.01  # T1 gives up after 9 tries: 0.09 s instead of 27 s
        if fixed:
            assert init_with_tag_zero(sctp)

    async with anyio.create_task_group() as tg:
        ends, a, b = await settled_pair(tg, drop_first_init_acks(), prepare)
        states = (ends[0].state, ends[1].state)
        # The first INIT of each side went before either knew the other's tag.
        retried = [
            tag for dtls in (a, b) for tag in [int.from_bytes(p[4:8], "big") for p in dtls.sent if p[12] == INIT][1:]
        ]
        for sctp in ends:
            await sctp.stop()
    return states[0], states[1], retried


async def test_an_init_collision_with_both_init_acks_lost_still_opens() -> None:
    # Fails on stock aiortc 1.16: both ends stay 'closed' (see the next test).
    a, b, retried = await associate(fixed=True)
    assert (a, b) == ("connected", "connected")
    assert retried
    assert all(tag == 0 for tag in retried)


async def test_stock_aiortc_never_opens_after_that_collision() -> None:
    """Why init_with_tag_zero exists. If this fails, aiortc fixed the bug: drop the workaround."""
    a, b, retried = await associate(fixed=False)
    assert (a, b) == ("closed", "closed")
    assert retried
    assert all(tag != 0 for tag in retried)


def test_init_with_tag_zero_refuses_an_object_without_aiortc_internals() -> None:
    assert init_with_tag_zero(object()) is False


# --- SCTP: T1 starts at 0.1 s and doubles --------------------------------------------------------


def drop_inits(count: int) -> Drop:
    """Lose the first ``count`` INITs each way."""
    lost: dict[str, int] = {}

    def drop(sender: str, packet: bytes) -> bool:
        if packet[12] == INIT and lost.get(sender, 0) < count:
            lost[sender] = lost.get(sender, 0) + 1
            return True
        return False

    return drop


async def test_our_t1_resends_after_a_tenth_of_a_second_then_doubling_and_gives_up_after_t1_tries() -> None:
    """Driven by hand (each expiry called, not waited for): the delays T1 asks of the loop."""
    async with anyio.create_task_group() as tg:
        dtls = FakeDtls("a", "client", tg, lambda sender, packet: True)  # the peer hears nothing
        dtls.peer = FakeDtls("b", "server", tg, dtls._drop)
        sctp: Any = RTCSctpTransport(dtls)  # type: ignore[arg-type]
        sctp._rto = 0.5  # our LAN initial value: what stock aiortc's T1 would wait each time
        assert backoff_init_timer(sctp)
        loop = asyncio.get_running_loop()
        await sctp.start(None, 5000)  # the first INIT, and T1 armed
        delays = []
        while sctp._t1_handle is not None:
            delays.append(round(sctp._t1_handle.when() - loop.time(), 2))
            sctp._t1_handle.cancel()
            sctp._t1_expired()
            await anyio.lowlevel.checkpoint()  # the resend's task runs
        first, longest = T1_BACKOFF
        assert delays == [min(first * 2**i, longest) for i in range(T1_TRIES + 1)]
        assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.0]
        assert sum(delays) >= 9 * 0.5  # never less patient than aiortc's 9 sends 0.5 s apart
        assert sum(1 for packet in dtls.sent if packet[12] == INIT) == 1 + T1_TRIES
        assert sctp.state == "closed"  # given up, as aiortc does


async def test_an_association_whose_first_three_inits_each_way_are_lost_opens() -> None:
    def prepare(sctp: Any) -> None:
        assert init_with_tag_zero(sctp)
        assert backoff_init_timer(sctp)

    async with anyio.create_task_group() as tg:
        ends, a, _ = await settled_pair(tg, drop_inits(3), prepare)
        assert [s.state for s in ends] == ["connected", "connected"]
        assert sum(1 for packet in a.sent if packet[12] == INIT) >= 4
        for sctp in ends:
            await sctp.stop()


async def test_a_t1_resend_after_the_dtls_session_shut_down_ends_quietly() -> None:
    """Seen in an overloaded 8-process flood: a link closed while T1 was armed; its resend met a
    DTLS session already shut down (OpenSSL's error, not ConnectionError: the transport still said
    "connected"), and asyncio logged "Task exception was never retrieved"."""
    from OpenSSL.SSL import Error as TLSError

    async with anyio.create_task_group() as tg:
        dtls = FakeDtls("a", "client", tg, lambda sender, packet: True)
        dtls.peer = FakeDtls("b", "server", tg, dtls._drop)
        sctp: Any = RTCSctpTransport(dtls)  # type: ignore[arg-type]
        assert backoff_init_timer(sctp)
        await sctp.start(None, 5000)

        async def shut_down(chunk: Any) -> None:
            raise TLSError([("SSL routines", "", "protocol is shutdown")])

        sctp._send_chunk = shut_down
        before = asyncio.all_tasks()
        sctp._t1_handle.cancel()
        sctp._t1_expired()
        (resend,) = asyncio.all_tasks() - before
        await resend  # raised OpenSSL's error before
        sctp._t1_handle.cancel()
        tg.cancel_scope.cancel()


def test_backoff_init_timer_refuses_an_object_without_aiortc_internals() -> None:
    assert backoff_init_timer(object()) is False


# --- DTLS: each handshake datagram three times ------------------------------------------------


def drop_first_datagram_of(victim: str) -> Drop:
    lost: list[bytes] = []

    def drop(sender: str, data: bytes) -> bool:
        if sender == victim and not lost:
            lost.append(data)
            return True
        return False

    return drop


async def handshake(*, copies: bool, caplog: pytest.LogCaptureFixture) -> tuple[list[Any], list[FakeIce]]:
    """A DTLS handshake whose first datagram (the ClientHello) is lost; returns both transports."""
    drop = drop_first_datagram_of("client")
    ices = [FakeIce("client", "controlled", drop), FakeIce("server", "controlling", drop)]
    ices[0].peer, ices[1].peer = ices[1], ices[0]
    certs = [RTCCertificate.generateCertificate() for _ in ices]
    ends: list[Any] = [RTCDtlsTransport(ice, [cert]) for ice, cert in zip(ices, certs, strict=True)]  # type: ignore[arg-type]
    helpers = [copy_handshake_flights(end) for end in ends] if copies else []
    assert all(h is not None for h in helpers)
    caplog.set_level(logging.DEBUG, logger="aiortc.rtcdtlstransport")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for end, other in ((ends[0], certs[1]), (ends[1], certs[0])):
                tg.start_soon(end.start, RTCDtlsParameters(fingerprints=other.getFingerprints()))
    return ends, ices


async def test_a_lost_handshake_datagram_is_replaced_by_its_copy_not_by_openssls_timer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ends, ices = await handshake(copies=True, caplog=caplog)
    try:
        assert [end.state for end in ends] == ["connected", "connected"]
        # Fails without the copies: OpenSSL resends the ClientHello after its 1 s timer.
        assert "DTLS handling timeout" not in caplog.text
        # Once connected, every datagram goes out once.
        await anyio.sleep(DTLS_COPIES * DTLS_COPY_GAP * 2)  # the last copies of the last flights
        before = len(ices[0].sent)
        await ends[0]._send_data(b"x" * 100)
        await anyio.sleep(DTLS_COPIES * DTLS_COPY_GAP * 2)
        assert len(ices[0].sent) == before + 1
        assert ices[0].sent.count(ices[0].sent[0]) == DTLS_COPIES  # byte-identical copies
    finally:
        for end in ends:
            await end.stop()


async def test_stock_aiortc_waits_for_openssls_timer(caplog: pytest.LogCaptureFixture) -> None:
    """Why copy_handshake_flights exists (takes ~1 s: OpenSSL's first retransmission)."""
    ends, _ = await handshake(copies=False, caplog=caplog)
    try:
        assert [end.state for end in ends] == ["connected", "connected"]
        assert "DTLS handling timeout" in caplog.text
    finally:
        for end in ends:
            await end.stop()


def test_copy_handshake_flights_refuses_an_object_without_aiortc_internals() -> None:
    assert copy_handshake_flights(object()) is None


# --- ICE: STUN check timeouts per transport --------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)


async def first_timeout(protocol: StunProtocol) -> float:
    """The delay of a check's first retransmission (no packet leaves: the transport records)."""
    protocol.transport = Recorder()  # type: ignore[assignment]
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    async with anyio.create_task_group() as tg:
        tg.start_soon(protocol.request, request, ("10.99.0.2", 9))
        await anyio.lowlevel.checkpoint()
        transaction: Any = protocol.transactions[request.transaction_id]
        delay = float(transaction._Transaction__timeout_delay) / 2  # doubled once it was first sent
        tg.cancel_scope.cancel()
    return delay


class FakeConnection:
    def __init__(self, protocols: list[StunProtocol]) -> None:
        self._protocols = protocols


class FakeIceTransport:
    def __init__(self, protocols: list[StunProtocol]) -> None:
        self._connection = FakeConnection(protocols)


async def test_ice_checks_of_our_transports_retry_after_stun_rto_and_others_keep_aioices() -> None:
    ours, theirs = StunProtocol(None), StunProtocol(None)  # type: ignore[arg-type]
    assert lan_stun_retries(FakeIceTransport([ours]))
    assert await first_timeout(ours) == STUN_RTO  # fails without lan_stun_retries: 0.5
    assert await first_timeout(theirs) == stun.RETRY_RTO == 0.5  # the global is untouched


def test_lan_stun_retries_refuses_an_object_without_aioice_internals() -> None:
    assert lan_stun_retries(object()) is False


# --- DTLS only from the peer's ICE address (issue 19, S3) -------------------------------------


async def test_dtls_records_from_another_address_than_the_peers_ice_address_are_dropped_and_counted() -> None:
    connection = Connection(ice_controlling=True)
    protocol = StunProtocol(connection)
    protocol.local_candidate = Candidate(
        foundation="1", component=1, transport="udp", priority=1, host="10.99.0.1", port=4000, type="host"
    )
    connection._protocols.append(protocol)
    counted = SourceFilter()
    ice = FakeIceTransport([protocol])
    ice._connection = connection  # type: ignore[assignment]
    assert accept_only_selected_source(ice, counted)
    record = b"\x16\xfe\xfd" + bytes(20)  # a DTLS handshake record
    peer, stranger, other = ("10.99.0.2", 5000), ("10.99.0.66", 5000), ("10.99.0.3", 5000)

    def candidate(addr: tuple[str, int]) -> Candidate:
        return Candidate(
            foundation="2", component=1, transport="udp", priority=1, host=addr[0], port=addr[1], type="host"
        )

    protocol.datagram_received(record, peer)  # no remote description yet: nobody is the peer
    connection._check_list += [CandidatePair(protocol, candidate(peer)), CandidatePair(protocol, candidate(other))]
    protocol.datagram_received(record, stranger)
    assert connection._queue.qsize() == 0  # fails without the filter: aioice queues both for DTLS
    assert counted.dropped == 2
    protocol.datagram_received(record, peer)  # a candidate on the check list, before nomination
    assert connection._queue.get_nowait() == (record, 1)
    connection._nominated[1] = connection._check_list[0]  # once nominated, only that address
    protocol.datagram_received(record, other)
    assert counted.dropped == 3
    protocol.datagram_received(record, peer)
    assert connection._queue.get_nowait() == (record, 1)
    protocol.datagram_received(bytes(20), stranger)  # STUN-looking: aioice parses it (DTLS ignores such bytes)
    assert counted.dropped == 3


def test_the_source_filter_refuses_an_object_without_aioice_internals() -> None:
    assert accept_only_selected_source(object(), SourceFilter()) is False


# --- the whole session -------------------------------------------------------------------------


async def test_a_session_applies_its_setup_fixes_and_the_switch_turns_them_off() -> None:
    session = RtcSession(addresses=["127.0.0.2"])  # never negotiated: no socket is opened
    try:
        assert session.setup_fixes == ["init-tag", "t1-backoff", "dtls-copies"]  # stun-rto once gathered
    finally:
        await session.close()
    RtcSession.link_setup_fixes = False
    try:
        stock = RtcSession(addresses=["127.0.0.2"])
        assert stock.setup_fixes == []
        await stock.close()
    finally:
        RtcSession.link_setup_fixes = True


PAIR = textwrap.dedent(
    """
    import anyio
    from movex_p2p.transport.webrtc import RtcSession

    async def main():
        a, b = RtcSession(addresses=["127.0.0.2"]), RtcSession(addresses=["127.0.0.2"])
        try:
            await a.accept_answer(await b.accept_offer(await a.create_offer()))
            with anyio.fail_after(20):
                await a.wait_open()
                await b.wait_open()
            await anyio.sleep(0.05)  # the last copies of the last flight
            print(sorted(a.setup_fixes), sorted(b.setup_fixes), a._copies.copies_sent > 0)
        finally:
            await a.close()
            await b.close()

    anyio.run(main)
    """
)


@pytest.mark.netns
def test_two_real_sessions_open_with_every_fix_applied() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c", f'{SETUP} && exec "$0" -c "$1"', sys.executable, PAIR],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    fixes = "['dtls-copies', 'init-tag', 'source-filter', 'stun-rto', 't1-backoff']"
    assert done.stdout.strip() == f"{fixes} {fixes} True"
