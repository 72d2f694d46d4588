"""The aiortc adapter: one peer connection with two negotiated data channels (the only aiortc import).

Channel 0 is reliable and ordered: it carries the link's frame stream. Channel 1 is unordered
with no retransmission (a datagram lane): it carries liveness and election messages, which
must never wait behind a retransmission of data. Both share one SCTP association, whose
retransmission timers are set for a LAN (see :func:`use_lan_timers`).

aiortc is imported with PyAV and aioice's mDNS resolver stubbed out (:mod:`.avstub`). Link setup on a lossy LAN gets
three workarounds per session (``RtcSession.link_setup_fixes``): DTLS handshake datagrams go
out three times, ICE checks retry after 0.1 s, a retransmitted SCTP INIT carries tag 0
(docs/design.md "Real networks", docs/upstream.md).

aiortc callbacks only hand what arrived to the session's :class:`SessionSink` (a synchronous,
non-blocking receiver owned by the caller); everything else runs in tasks owned by the caller.
aiortc errors are mapped to movex_p2p errors here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable
from typing import Any, ClassVar, Final, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import ChannelClosed, ConnectError, RemoteProtocolError
from .avstub import stub_av

with stub_av():  # aiortc without PyAV, FFmpeg and dnspython: ~22 MB less (docs/design.md)
    from aioice import stun
    from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
    from aiortc import __version__ as aiortc_version
    from aiortc.exceptions import InvalidStateError
    from aiortc.rtcsctptransport import InitChunk, serialize_packet

__all__ = [
    "CHANNEL_ID",
    "DATAGRAM_CHANNEL_ID",
    "DTLS_COPIES",
    "DTLS_COPY_GAP",
    "LAN_RTO",
    "STUN_RTO",
    "T1_BACKOFF",
    "T1_TRIES",
    "HandshakeCopies",
    "RtcSession",
    "SessionSink",
    "SourceFilter",
    "accept_only_selected_source",
    "backoff_init_timer",
    "candidate_types",
    "check_host_only",
    "copy_handshake_flights",
    "init_with_tag_zero",
    "lan_stun_retries",
    "quiet_closed_transmit",
    "use_lan_timers",
]

log = logging.getLogger(__name__)

CHANNEL_ID: Final = 0
DATAGRAM_CHANNEL_ID: Final = 1
LOW_WATER: Final = 16 * 1024
"""``bufferedAmountLowThreshold``: a paused writer resumes once the channel drained below this."""

LAN_RTO: Final = (0.02, 0.5, 1.0)
"""SCTP retransmission timeout (minimum, initial, maximum) in seconds on our associations.

aiortc uses the internet's RFC 4960 values (1 s, 3 s, 60 s): on a LAN that loses a packet
now and then, every loss on a quiet channel then stalls it for at least a second. The round
trip here is ~1 ms, so 20 ms is still 20 round trips (measured in docs/design.md). The
initial value also paces the association's INIT, which aiortc abandons after 8 tries: 0.5 s
leaves 4 s for a DTLS handshake that lost a flight (OpenSSL retries after 1 s, then 2 s).
T1 (INIT) does not back off in aiortc: it resends every 0.5 s (:func:`backoff_init_timer` makes
ours start at 0.1 s and double).
"""

T1_BACKOFF: Final = (0.1, 1.0)
"""Our associations' T1 (INIT, COOKIE ECHO): first resend after 0.1 s, doubling up to 1 s."""
T1_TRIES: Final = 10
"""Resends of an INIT or COOKIE ECHO before the association is given up (7.5 s in all; aiortc: 8 every 0.5 s)."""

DTLS_COPIES: Final = 3
"""Times each DTLS handshake datagram is sent (see :func:`copy_handshake_flights`)."""
DTLS_COPY_GAP: Final = 0.004
"""Seconds between two copies of a handshake datagram."""

STUN_RTO: Final = 0.1
"""First retransmission timeout of our ICE connectivity checks (aioice: 0.5 s, then doubling)."""


def candidate_types(sdp: str) -> list[tuple[str, str]]:
    """``(address, type)`` of every ``a=candidate`` line of an SDP (pure)."""
    found: list[tuple[str, str]] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            kind = fields[fields.index("typ") + 1] if "typ" in fields else "?"
            found.append((fields[4] if len(fields) > 4 else "?", kind))
    return found


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def check_host_only(sdp: str, *, allowed: Iterable[str] | None = None) -> None:
    """Raise RemoteProtocolError unless the SDP carries host candidates with IP addresses only
    (no ``.local`` names: aioice's mDNS resolver is not loaded), optionally on ``allowed``."""
    candidates = candidate_types(sdp)
    if not candidates:
        raise RemoteProtocolError("SDP carries no ICE candidate")
    bad = [c for c in candidates if c[1] != "host"]
    if bad:
        raise RemoteProtocolError(f"SDP carries non-host candidates {bad}")
    named = [address for address, _ in candidates if not _is_ip(address)]
    if named:
        raise RemoteProtocolError(f"SDP carries candidates that are not IP addresses {named}")
    if allowed is not None:
        allowed_set = set(allowed)
        if not any(address in allowed_set for address, _ in candidates):
            raise RemoteProtocolError(f"SDP carries no candidate on {sorted(allowed_set)}")


def _restrict_candidates(sdp: str, allowed: frozenset[str] | None) -> str:
    """Drop our candidates on addresses outside ``allowed`` (other interfaces stay private)."""
    if allowed is None:
        return sdp
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 4 and fields[4] not in allowed:
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


_warned: set[str] = set()


def _warn_once(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("aiortc %s's internals differ from 1.16: %s not applied", aiortc_version, what)


class SessionSink(Protocol):
    """Receives what a session's channels deliver; called from aiortc callbacks: must not block."""

    def on_data(self, data: bytes) -> None:
        """A message of the reliable channel."""
        ...

    def on_datagram(self, data: bytes) -> None:
        """A message of the datagram channel."""
        ...

    def on_down(self, reason: str) -> None:
        """A channel or the peer connection closed or failed (called once)."""
        ...


def use_lan_timers(sctp: Any) -> bool:
    """Give one aiortc SCTP association LAN retransmission timers (:data:`LAN_RTO`).

    This reaches into aiortc's private SCTP state (``_rto``, ``_srtt``, ``_rttvar``,
    ``_update_rto``), per association, so other aiortc users in the process are unaffected;
    returns False, leaving aiortc's defaults, if those internals are not there
    (``tests/test_lan_units.py`` fails on an aiortc that lacks them).
    """
    update = getattr(sctp, "_update_rto", None)
    if update is None or not hasattr(sctp, "_rto"):
        return False
    low, initial, high = LAN_RTO

    def lan_update_rto(rtt: float) -> None:
        update(rtt)  # keeps aiortc's smoothed round trip and variance up to date
        sctp._rto = min(max(sctp._srtt + 4 * sctp._rttvar, low), high)

    sctp._update_rto = lan_update_rto
    sctp._rto = initial
    return True


def quiet_closed_transmit(sctp: Any) -> bool:
    """Keep one association's retransmissions from failing loudly once its DTLS transport closed.

    aiortc starts a retransmission (``_transmit``) as a task nobody awaits when its T3 timer
    fires; if the peer closed the connection meanwhile, DTLS raises ``ConnectionError`` ("not
    connected"), or OpenSSL's "protocol is shutdown", in that task and asyncio prints "Task
    exception was never retrieved" at exit. Our short LAN timers make that race common. Nothing
    can be sent on a closed connection, and the link's own close path reports the loss, so those
    two errors are logged at DEBUG; any other error still raises. Per association, like
    :func:`use_lan_timers`; False if the internals are not there.
    """
    transmit = getattr(sctp, "_transmit", None)
    if transmit is None:
        return False

    from OpenSSL import SSL  # aiortc's DTLS: imported with it

    async def transmit_unless_closed() -> None:
        try:
            await transmit()
        except ConnectionError as exc:
            log.debug("SCTP retransmission after its DTLS transport closed: %s", exc)
        except SSL.Error as exc:  # the same race, caught by OpenSSL first: "protocol is shutdown"
            if "protocol is shutdown" not in str(exc):
                raise
            log.debug("SCTP retransmission after its DTLS transport shut down: %s", exc)

    sctp._transmit = transmit_unless_closed
    return True


def init_with_tag_zero(sctp: Any) -> bool:
    """Make one aiortc association send every INIT with verification tag 0, as RFC 9260 8.5.1 says.

    aiortc 1.16 sends a retransmitted INIT with the tag it learnt from the peer's INIT. Both
    sides always send an INIT (RFC 8841 9.3), so if both INIT-ACKs are lost, each side drops
    the other's later INITs (an INIT must carry tag 0) until T1 gives up: the link never opens
    (docs/upstream.md). Per association; False, leaving aiortc as it is, if the internals differ.
    """
    send = getattr(sctp, "_send_chunk", None)
    needed = ("_remote_verification_tag", "_local_port", "_remote_port", "transport")
    if send is None or not all(hasattr(sctp, name) for name in needed):
        return False

    async def send_chunk(chunk: Any) -> None:
        if isinstance(chunk, InitChunk) and sctp._remote_verification_tag != 0:
            packet = serialize_packet(sctp._local_port, sctp._remote_port, 0, chunk)
            await sctp.transport._send_data(packet)
        else:
            await send(chunk)

    sctp._send_chunk = send_chunk
    return True


def backoff_init_timer(sctp: Any) -> bool:
    """Make one aiortc association resend a lost INIT or COOKIE ECHO after 0.1 s, then doubling (:data:`T1_BACKOFF`).

    aiortc's T1 resends every ``_rto`` (our initial 0.5 s) without backing off. At 10 % loss
    each of the four packets that open an association is lost now and then, and each loss cost
    0.5 s. Starting short and doubling, up to 1 s, also leaves the association longer (7.5 s)
    for a DTLS handshake whose last flight was lost: the peer drops INITs until its DTLS is up.
    Per association, through aiortc's private T1 state (``_t1_chunk``, ``_t1_failures``,
    ``_t1_handle``); False, leaving aiortc's timer, if those internals are not there.
    """
    needed = ("_t1_start", "_t1_expired", "_t1_chunk", "_t1_failures", "_t1_handle", "_send_chunk", "_set_state")
    if not all(hasattr(sctp, name) for name in needed) or not hasattr(sctp, "State"):
        return False
    first, longest = T1_BACKOFF
    resends: set[asyncio.Task[None]] = set()

    def arm() -> None:
        delay = min(first * 2**sctp._t1_failures, longest)
        sctp._t1_handle = asyncio.get_running_loop().call_later(delay, expired)

    def start(chunk: Any) -> None:
        sctp._t1_chunk, sctp._t1_failures = chunk, 0
        arm()

    async def resend(chunk: Any) -> None:
        from OpenSSL.SSL import Error as TLSError  # aiortc's DTLS raises it once shut down, still "connected"

        try:
            await sctp._send_chunk(chunk)
        except (ConnectionError, TLSError) as exc:  # closed meanwhile: the link's close path reports it
            log.debug("SCTP T1 resend after its DTLS transport closed: %s", exc)

    def expired() -> None:
        sctp._t1_handle = None
        sctp._t1_failures += 1
        if sctp._t1_failures > T1_TRIES:
            sctp._set_state(sctp.State.CLOSED)  # as aiortc does when T1 gives up
            return
        task = asyncio.get_running_loop().create_task(resend(sctp._t1_chunk))
        resends.add(task)
        task.add_done_callback(resends.discard)
        arm()

    sctp._t1_start, sctp._t1_expired = start, expired
    return True


class HandshakeCopies:
    """Sends each DTLS handshake datagram of one transport :data:`DTLS_COPIES` times (see
    :func:`copy_handshake_flights`); owns the tasks that send the copies: :meth:`close` ends them."""

    def __init__(self, dtls: Any, send: Any) -> None:
        self._dtls = dtls
        self._send = send
        self._tasks: set[asyncio.Task[None]] = set()
        self.copies_sent = 0

    async def send(self, data: bytes) -> None:
        """The ICE transport's ``_send``: the datagram now, copies later while the handshake runs."""
        await self._send(data)
        if self._dtls.state == "connecting" and data and 19 < data[0] < 64:  # a DTLS record
            task = asyncio.get_running_loop().create_task(self._copies(data))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    async def _copies(self, data: bytes) -> None:
        for _ in range(DTLS_COPIES - 1):
            await asyncio.sleep(DTLS_COPY_GAP)
            await self._send(data)
            self.copies_sent += 1

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, ConnectionError):  # the connection closed between two copies
            log.debug("DTLS handshake copy not sent: %s", exc)
        elif exc is not None:
            raise exc  # a bug: reported by the event loop's exception handler

    def close(self) -> None:
        """Cancel the copies not sent yet."""
        for task in self._tasks:
            task.cancel()


def copy_handshake_flights(dtls: Any) -> HandshakeCopies | None:
    """Send each datagram of one aiortc DTLS transport's handshake 3 times, 4 ms apart.

    OpenSSL resends a lost handshake flight only after its timer (1 s, then 2 s, 4 s...), and
    neither ``DTLS_set_timer_cb`` nor an earlier ``DTLSv1_handle_timeout`` can shorten it from
    Python. The copies are byte-identical: a receiver drops the extra ones (DTLS replay
    window, handshake message sequence). Only while the transport is ``connecting``; once it is
    connected every datagram goes out once. Wraps the ICE transport's ``_send`` of this one
    transport; None, leaving aiortc as it is, if the internals differ.
    """
    ice: Any = getattr(dtls, "transport", None)
    send = getattr(ice, "_send", None)
    if send is None or not hasattr(dtls, "state"):
        return None
    copies = HandshakeCopies(dtls, send)
    ice._send = copies.send
    return copies


class _LanTransactions(dict[Any, Any]):
    """One STUN protocol's transactions: each one starts with :data:`STUN_RTO` (aioice reads a global)."""

    def __setitem__(self, key: Any, transaction: Any) -> None:
        transaction._Transaction__timeout_delay = STUN_RTO
        super().__setitem__(key, transaction)


def _stun_internals_present() -> bool:
    transaction = stun.Transaction.__init__
    names = transaction.__code__.co_names
    return "_Transaction__timeout_delay" in names and "RETRY_RTO" in names


def lan_stun_retries(ice: Any) -> bool:
    """Give the STUN transactions (ICE checks) of one aiortc ICE transport a first timeout of
    :data:`STUN_RTO` instead of aioice's process-wide ``RETRY_RTO`` (0.5 s).

    A lost check then costs 0.1 s instead of 0.5 s (then 1 s, 2 s...). Call it after gathering
    (the protocols exist) and before the checks start; per transport. False if the internals differ.
    """
    protocols = getattr(getattr(ice, "_connection", None), "_protocols", None)
    if not isinstance(protocols, list) or not _stun_internals_present():
        return False
    for protocol in protocols:
        transactions = getattr(protocol, "transactions", None)
        if not isinstance(transactions, dict):
            return False
        if not isinstance(transactions, _LanTransactions):
            protocol.transactions = _LanTransactions(transactions)
    return True


class SourceFilter:
    """Counts the datagrams :func:`accept_only_selected_source` dropped for one session."""

    def __init__(self) -> None:
        self.dropped = 0

    def drop(self, addr: tuple[Any, ...]) -> None:
        """Count one foreign datagram; the first one of a session is logged."""
        self.dropped += 1
        if self.dropped == 1:
            log.warning("dropped a non-STUN datagram from %s: not the peer's ICE address", addr[0])


def accept_only_selected_source(ice: Any, source_filter: SourceFilter) -> bool:
    """Let one aiortc ICE transport pass on non-STUN datagrams (DTLS) only from the peer's ICE address.

    aioice hands every datagram that is not STUN to DTLS whatever its source, so during link
    setup anyone on the LAN who learns our port can race the peer with DTLS records of its own
    (a ClientHello, an alert). This drops a non-STUN datagram unless it comes from the remote
    address of the pair ICE nominated on that socket, or, before nomination, of a pair on its
    check list (a candidate of the peer's authenticated SDP, or an address that sent a check
    carrying the peer's ICE credentials): the peer's ClientHello may arrive before our side
    nominated. STUN still reaches aioice, which checks the credentials. Call it after
    gathering; False if the internals differ.
    """
    connection = getattr(ice, "_connection", None)
    protocols = getattr(connection, "_protocols", None)
    nominated = getattr(connection, "_nominated", None)
    check_list = getattr(connection, "_check_list", None)
    if not isinstance(protocols, list) or not isinstance(nominated, dict) or not isinstance(check_list, list):
        return False

    def known(protocol: Any, addr: tuple[Any, ...]) -> bool:
        source = (addr[0], addr[1])
        pair = nominated.get(protocol.local_candidate.component)
        if pair is not None:
            return pair.protocol is protocol and tuple(pair.remote_addr) == source
        return any(p.protocol is protocol and tuple(p.remote_addr) == source for p in check_list)

    for protocol in protocols:
        received = getattr(protocol, "datagram_received", None)
        if received is None or getattr(received, "filtered", False):
            continue

        def filtered(data: bytes, addr: tuple[Any, ...], received: Any = received, protocol: Any = protocol) -> None:
            if data and data[0] > 3 and not known(protocol, addr):  # not STUN (RFC 7983): DTLS, or anything else
                source_filter.drop(addr)
                return
            received(data, addr)

        filtered.filtered = True  # type: ignore[attr-defined]
        protocol.datagram_received = filtered
    return True


class RtcSession:
    """One RTCPeerConnection with a reliable ordered channel (id 0) and a datagram channel (id 1).

    Received messages go to ``sink`` (set it with :meth:`attach` before the channels open);
    the caller must ``await close()`` (in ``finally``, shielded) once done.
    """

    link_setup_fixes: ClassVar[bool] = True
    """Apply the link-setup workarounds (DTLS copies, STUN timeout, INIT tag) to new sessions;
    False measures aiortc as shipped (``benchmarks/wifi.py --stock-setup``)."""

    def __init__(self, *, addresses: Iterable[str] | None = None) -> None:
        self._allowed = None if addresses is None else frozenset(addresses)
        # iceServers=[] ALWAYS: aiortc's default configuration contacts a public STUN server.
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._channel: RTCDataChannel = self._pc.createDataChannel(
            "movex", negotiated=True, id=CHANNEL_ID, ordered=True
        )
        self._datagrams: RTCDataChannel = self._pc.createDataChannel(
            "movex-datagram", negotiated=True, id=DATAGRAM_CHANNEL_ID, ordered=False, maxRetransmits=0
        )
        self.lan_timers = use_lan_timers(self._pc.sctp) and quiet_closed_transmit(self._pc.sctp)
        if not self.lan_timers:
            log.warning("aiortc's SCTP internals changed: LAN retransmission timers not applied")
        self._copies: HandshakeCopies | None = None
        self.source_filter = SourceFilter()
        """Datagrams dropped because they came from another address than the peer's ICE address."""
        self.setup_fixes: list[str] = []
        """The link-setup workarounds applied to this session (so far)."""
        if self.link_setup_fixes:
            self._apply_setup_fixes()
        self._channel.bufferedAmountLowThreshold = LOW_WATER
        self._sink: SessionSink | None = None
        self._early: list[tuple[bool, bytes]] = []
        self._opened_tx: MemoryObjectSendStream[None]
        self._opened_rx: MemoryObjectReceiveStream[None]
        self._opened_tx, self._opened_rx = anyio.create_memory_object_stream[None](1)
        self._drained_tx: MemoryObjectSendStream[None]
        self._drained_rx: MemoryObjectReceiveStream[None]
        self._drained_tx, self._drained_rx = anyio.create_memory_object_stream[None](1)
        self._down: str | None = None
        self._closed = False
        for channel in (self._channel, self._datagrams):
            channel.on("open", self._on_open)
            channel.on("close", self._on_channel_close)
        self._channel.on("message", self._on_message)
        self._datagrams.on("message", self._on_datagram)
        self._channel.on("bufferedamountlow", self._on_drained)
        self._pc.on("connectionstatechange", self._on_state)

    def _apply_setup_fixes(self) -> None:
        sctp: Any = self._pc.sctp
        if init_with_tag_zero(sctp):
            self.setup_fixes.append("init-tag")
        else:
            _warn_once("INIT tag 0")
        if backoff_init_timer(sctp):
            self.setup_fixes.append("t1-backoff")
        else:
            _warn_once("INIT timer backoff")
        self._copies = copy_handshake_flights(sctp.transport)
        if self._copies is not None:
            self.setup_fixes.append("dtls-copies")
        else:
            _warn_once("DTLS handshake copies")

    def _after_gathering(self) -> None:
        sctp: Any = self._pc.sctp
        if accept_only_selected_source(sctp.transport.transport, self.source_filter):
            self.setup_fixes.append("source-filter")
        else:
            _warn_once("DTLS source filter")
        if not self.link_setup_fixes:
            return
        if lan_stun_retries(sctp.transport.transport):
            self.setup_fixes.append("stun-rto")
        else:
            _warn_once("STUN retransmission timeout")

    def attach(self, sink: SessionSink) -> None:
        """Deliver what arrives to ``sink`` from now on (and what arrived before, in order)."""
        self._sink = sink
        early, self._early = self._early, []
        for reliable, data in early:
            (sink.on_data if reliable else sink.on_datagram)(data)
        if self._down is not None:
            sink.on_down(self._down)

    # -- callbacks: hand over, never block -----------------------------------------------------

    def _signal(self, stream: MemoryObjectSendStream[None]) -> None:
        try:
            stream.send_nowait(None)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # a wake-up is already pending, or nobody waits any more

    def _on_open(self) -> None:
        self._signal(self._opened_tx)

    def _on_drained(self) -> None:
        self._signal(self._drained_tx)

    def _on_message(self, data: bytes | str) -> None:
        self._deliver(True, data if isinstance(data, bytes) else data.encode())

    def _on_datagram(self, data: bytes | str) -> None:
        self._deliver(False, data if isinstance(data, bytes) else data.encode())

    def _deliver(self, reliable: bool, data: bytes) -> None:
        if self._down is not None:
            return
        sink = self._sink
        if sink is None:
            if len(self._early) >= 64:
                self._report_down("data before the link was attached")
            else:
                self._early.append((reliable, data))
            return
        if reliable:
            sink.on_data(data)
        else:
            sink.on_datagram(data)

    def _on_channel_close(self) -> None:
        self._report_down("channel closed")

    def _on_state(self) -> None:
        state = self._pc.connectionState
        log.debug("peer connection %s", state)
        if state in ("closed", "failed"):  # aiortc reports a lost peer as closed, not failed
            self._report_down(f"peer connection {state}")

    def _report_down(self, reason: str) -> None:
        if self._down is not None:
            return
        self._down = reason
        self._signal(self._opened_tx)  # wake a pending wait_open so it sees the failure
        self._signal(self._drained_tx)
        if self._sink is not None:
            self._sink.on_down(reason)

    # -- offer / answer -----------------------------------------------------------------------

    async def create_offer(self) -> str:
        """Gather (non-trickle) and return our offer SDP: host candidates only."""
        await self._pc.setLocalDescription(await self._pc.createOffer())
        self._after_gathering()
        return self._local_sdp()

    async def accept_offer(self, sdp: str) -> str:
        """Apply the remote offer; gather and return our answer SDP."""
        check_host_only(sdp)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await self._pc.setLocalDescription(await self._pc.createAnswer())
            self._after_gathering()
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise RemoteProtocolError(f"unusable offer: {exc!r}") from exc
        return self._local_sdp()

    async def accept_answer(self, sdp: str) -> None:
        """Apply the remote answer."""
        check_host_only(sdp)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise RemoteProtocolError(f"unusable answer: {exc!r}") from exc

    def _local_sdp(self) -> str:
        sdp = _restrict_candidates(self._pc.localDescription.sdp, self._allowed)
        check_host_only(sdp)
        return str(sdp)

    async def wait_open(self) -> None:
        """Wait until both channels are open (the caller bounds it); ConnectError if the session died."""
        while self._channel.readyState != "open" or self._datagrams.readyState != "open":
            if self._down is not None:
                raise ConnectError(f"peer connection closed before the channels opened ({self._down})")
            await self._opened_rx.receive()

    # -- data ---------------------------------------------------------------------------------

    @property
    def buffered_amount(self) -> int:
        """Bytes handed to the reliable channel and not yet sent."""
        return int(self._channel.bufferedAmount)

    async def wait_drained(self) -> None:
        """Wait for the ``bufferedamountlow`` signal (it may be stale: re-check the amount)."""
        await self._drained_rx.receive()

    def send(self, data: bytes) -> None:
        """Hand one message to the reliable channel; ChannelClosed if it is not open."""
        self._send(self._channel, data)

    def send_datagram(self, data: bytes) -> None:
        """Hand one message to the datagram channel (it may be lost); ChannelClosed if not open."""
        self._send(self._datagrams, data)

    def _send(self, channel: RTCDataChannel, data: bytes) -> None:
        if self._down is not None or channel.readyState != "open":
            raise ChannelClosed("data channel is not open")
        try:
            channel.send(data)
        except (InvalidStateError, ValueError) as exc:
            raise ChannelClosed(f"data channel refused a message: {exc!r}") from exc

    async def close(self) -> None:
        """Close the peer connection (idempotent). Call it shielded: aiortc ignores cancel scopes."""
        if self._closed:
            return
        self._closed = True
        self._report_down("closed")
        if self._copies is not None:
            self._copies.close()
        try:
            await self._pc.close()
        except Exception:
            log.debug("peer connection close failed", exc_info=True)
        finally:
            for stream in (self._opened_tx, self._drained_tx, self._opened_rx, self._drained_rx):
                stream.close()
