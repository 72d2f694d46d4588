"""LanTransport: mDNS discovery, authenticated TCP signaling and WebRTC data channels, full mesh.

Every pair of peers of a room holds one link (:mod:`.link`): a reliable, ordered lane for
frames of any size (cut into pieces and paced, so nothing waits behind megabytes inside
aiortc) and a datagram lane for heartbeats and election messages, which must never wait
behind a retransmission. A heartbeat datagram goes out on every link every
``heartbeat_interval`` (0.1 s); a link is declared dead only after ``dead_after`` (0.9 s) with
nothing at all heard on it: mDNS records and aiortc's own consent checks are far too slow for
liveness, and a link that still delivers anything is never torn down.

Leaving sends a goodbye frame on every channel and the mDNS goodbye at once, so others see a
graceful leave within milliseconds. A peer restarted with the same identity announces a new
incarnation; its old link is replaced once the new incarnation has proven itself in a handshake.

Strangers (docs/security.md): what mDNS and peer exchange tell is a hint to dial, never proof:
nothing learnt from them closes or refuses a live, authenticated link, and a peer never proven
is dialed a few times only. Incoming handshakes are bounded per source address and in total,
must authenticate within :data:`AUTH_DEADLINE`, and an address whose handshakes keep failing
is refused for a while, told why and for how long (an unsigned ``Refusal``: the dialer's
``wait_ready`` then raises ``AuthenticationFailed`` with that reason rather than electing
itself alone); failures are counted by reason, nothing else is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import math
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Final

import anyio
from anyio.abc import Listener, SocketAttribute, SocketStream, TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.stapled import MultiListener

from ..election.detector import FailureDetector
from ..errors import (
    AuthenticationFailed,
    ChannelClosed,
    ConnectError,
    RemoteProtocolError,
    TransportError,
)
from ..identity import Identity
from ..ids import PeerId
from ..lobby import Lobby
from .base import Frame, PeerDown, PeersSeen, PeerUp, TransportEvent
from .discovery import Announcement, Discovery, PeerGone
from .interfaces import default_interfaces, usable_interfaces
from .link import DEFAULT_MAX_FRAME, MAX_DATAGRAM, FrameDecoder, Link, encode_frame
from .mesh import (
    HINT_LIMIT,
    AddressState,
    Attempt,
    Attempts,
    Hints,
    LanStatus,
    Ourselves,
    PeerAddress,
    hint_addresses,
    parse_peer_address,
    with_address,
)
from .signaling import (
    MAX_ADDRESSES,
    PROTOCOL_VERSION,
    Challenge,
    Contact,
    Declined,
    Exchange,
    Hello,
    Refusal,
    Refused,
    derive_key,
    refuse,
    run_dialer,
    run_listener,
)
from .webrtc import RtcSession

__all__ = [
    "AUTH_DEADLINE",
    "MAX_DATAGRAM",
    "FrameDecoder",
    "LanEndpoint",
    "LanStatus",
    "LanTransport",
    "default_interfaces",
    "encode_frame",
    "usable_interfaces",
]

log = logging.getLogger(__name__)

INBOX_LIMIT: Final = 256 * 1024 * 1024
"""Bytes of received frames the node has not taken yet; a link that overruns it is dropped."""
AUTH_DEADLINE: Final = 2.0
"""Seconds a handshake may take until the other side proved the room key and its identity (either role)."""
_MAX_HANDSHAKES: Final = 64
"""Incoming handshakes not yet authenticated, at once; a further one pushes out the oldest."""
_MAX_PER_ADDRESS: Final = 4
"""Incoming handshakes not yet authenticated from one source address, at once."""
_STRIKES: Final = 4
"""Failed incoming handshakes from one address before it is refused for a while (doubling, up to a minute)."""
_PENALTY: Final = (1.0, 60.0)
_STRUCK: Final = "refused: too many failures from that address"
"""The reason counted (``LanStatus.refused``) when an address is refused after its strikes."""
_REFUSAL_REASON: Final = "too many failed handshakes from this address (a wrong room secret?)"
"""What a refused dialer is told (then the seconds until the refusal ends)."""
_REFUSING: Final = 16
"""Refused dialers told why at once; beyond that the connection is closed without a word."""
_REFUSAL_LINGER: Final = 0.5
"""Seconds a refusal waits for the dialer to read it and hang up."""
_ADDRESSES_KEPT: Final = 1024
"""Source addresses whose failures are remembered (counts only; the oldest is forgotten first)."""
_FAILURES_KEPT: Final = 16
_DISCOVERY_GRACE: Final = 0.5
"""For this long after joining, a peer counts one more member it may not have heard of yet: the
peers of a room that is already there answer its first mDNS query in that time (even on a busy
machine), so it joins them rather than electing itself first."""
_STALL: Final = 0.25
"""The heartbeat loop woke this much later than due: the process was stalled (a busy CPU, a
paused VM), and what peers sent meanwhile may still wait unread. Silence that long is ours."""


# --- the transport ------------------------------------------------------------------------


_BACKOFF: Final = (0.05, 2.0)
"""First and longest pause between two dials of one peer or address."""
_GROWTH: Final = 1.5
"""Each failed dial makes the next pause this much longer (up to the longest)."""
_FALLBACK_DIAL: Final = 1.0
"""A peer seen over mDNS is dialed by the lower id at once; the higher id dials only if no link came after this long."""
_HINT_TRIES: Final = 4
"""Failed dials of a peer never proven (learnt by peer exchange or mDNS only) before its loop stops."""
_RETRY_UNPROVEN: Final = (2.0, 60.0)
"""After its loop stopped, news of a never-proven peer restarts it only after this pause (doubling)."""
_KNOWN_LIMIT: Final = 256
"""Most peers kept from mDNS at once (the oldest never-proven one makes room for a newcomer)."""
_CANDIDATES: Final = 4
"""Distinct mDNS records (address, port, incarnation) kept per peer id: a copy cannot hide the real one."""
_PROVEN_LIMIT: Final = 4096
"""Peers remembered as proven (a link with them was authenticated)."""
_STABLE_LINK: Final = 5.0
"""A link that stayed open this long resets the dial backoff."""
_SYN_TRIES: Final = 3
"""Connection attempts per address of one dial (overlapping, the first to connect wins)."""
_NEXT_ADDRESS: Final = 0.25
"""Dialing several addresses of a peer, the next one is tried after this long (or once the last failed)."""
_LOBBY_POLL: Final = 0.5
"""Seconds between two looks at whether the room started (a change is re-announced over mDNS)."""
_JOINING_LIMIT: Final = 6
"""A found peer that answers our handshakes counts as joining for at most this many ``connect_timeout``
(its link may take long on a lossy Wi-Fi; one that answers yet never links must not block the room)."""


def _remote_host(stream: SocketStream) -> str | None:
    """The IP address at the other end of a TCP stream."""
    try:
        address = stream.extra(SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return None
    return address[0] if isinstance(address, tuple) else None


class LanTransport:
    """The LAN: mDNS discovery + authenticated signaling + WebRTC data channels (full mesh).

    ``interfaces`` lists the IPv4 addresses or adapter names to use (default: the machine's
    non-loopback IPv4 interfaces); ``port`` is the signaling TCP port (0: ephemeral). ``peers``
    lists signaling addresses (``"host:port"``) to dial directly, for networks where multicast
    does not pass ("join by address"): each is retried with a capped backoff for as long as the
    endpoint runs, and every peer passes on the addresses of the others, so one known address
    is enough to mesh a room. A peer from which nothing at all was heard for ``dead_after``
    seconds is declared dead; heartbeat datagrams go out every ``heartbeat_interval`` seconds;
    opening one link (signaling + ICE + DTLS + SCTP) is bounded by ``connect_timeout``;
    ``max_frame`` bounds one frame in either direction.
    """

    announces_lobby: Final = True
    """:meth:`connect` takes ``lobby`` and ``started`` (what a lobby screen shows of the room)."""

    def __init__(
        self,
        interfaces: Sequence[str] | None = None,
        port: int = 0,
        peers: Sequence[str] = (),
        *,
        heartbeat_interval: float = 0.1,
        dead_after: float = 0.9,
        connect_timeout: float = 5.0,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        if not 0 < heartbeat_interval < dead_after:
            raise ValueError("need 0 < heartbeat_interval < dead_after")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ValueError(f"port {port!r}: expected 0 (ephemeral) or a TCP port number up to 65535")
        if isinstance(peers, str):
            peers = [peers]
        if isinstance(interfaces, str):
            interfaces = [interfaces]
        self.interfaces = None if interfaces is None else list(interfaces)
        self.port = port
        self.peers: list[PeerAddress] = list(dict.fromkeys(parse_peer_address(p) for p in peers))
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self.connect_timeout = connect_timeout
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame

    def connect(
        self,
        *,
        peer_id: PeerId,
        name: str,
        room: str,
        secret: str | None,
        max_frame: int | None = None,
        role: str = "player",
        identity: Identity | None = None,
        lobby: Lobby | None = None,
        started: Callable[[], bool] | None = None,
    ) -> LanEndpoint:
        """Join ``room`` as ``identity`` (``async with``); leaving says goodbye and closes every link.

        ``peer_id`` must be ``identity.id``: handshakes prove it with the identity's key (without
        an identity, ``peer_id`` must be the id of a fresh one, so pass the identity).
        ``max_frame`` raises (never lowers) the transport's own bound for this endpoint's links;
        ``role`` is announced in the mDNS record (a lobby counts players, not spectators), and so
        is ``lobby`` (hints for a lobby screen); ``started()`` says whether the room holds a
        resource now: it is looked at every half second and a change re-announced.
        """
        limit = self.max_frame if max_frame is None else max(self.max_frame, max_frame)
        identity = identity or Identity.generate()
        if identity.id != peer_id:
            raise ValueError(f"peer id {peer_id!r} is not the id of the identity given ({identity.id!r})")
        return LanEndpoint(
            self,
            identity=identity,
            name=name,
            room=room,
            secret=secret,
            max_frame=limit,
            role=role,
            lobby=lobby or Lobby(secret=bool(secret)),
            started=started,
        )


class _PeerLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['peer'] if self.extra else '?'}] {msg}", kwargs


class LanEndpoint:
    """One peer's presence in a room on the LAN (see :class:`LanTransport`)."""

    def __init__(
        self,
        transport: LanTransport,
        *,
        identity: Identity,
        name: str,
        room: str,
        secret: str | None,
        max_frame: int = DEFAULT_MAX_FRAME,
        role: str = "player",
        lobby: Lobby | None = None,
        started: Callable[[], bool] | None = None,
    ) -> None:
        peer_id = identity.id
        self.identity = identity
        self.id = peer_id
        self.name = name
        self.room = room
        self.role = role
        self._t = transport
        self._max_frame = max_frame
        self._secret = secret
        self._log = _PeerLog(log, {"peer": peer_id})
        self.incarnation = time.time_ns()
        self.auth_failures: deque[str] = deque(maxlen=_FAILURES_KEPT)
        """The latest authentication failures (peers refused, or that refused us), as short texts."""
        self.refused: Counter[str] = Counter()
        """Handshakes that failed or were refused, by reason (a fixed set of words)."""
        self._incoming: OrderedDict[anyio.CancelScope, str] = OrderedDict()  # not yet authenticated: source
        self._strikes: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address: (failures, refused until)
        self._refusing = 0  # refusals being told now
        self._proven: OrderedDict[PeerId, None] = OrderedDict()  # peers we held an authenticated link with
        self._gave_up: dict[PeerId, tuple[float, float]] = {}  # never-proven peer: (when its loop stopped, pause)
        self._bad: set[tuple[PeerId, int, tuple[str, ...], int]] = set()  # mDNS records that failed auth
        self.signaling_port = 0
        self.interfaces: list[str] = []
        self._key = b""
        self._links: dict[PeerId, Link] = {}
        self._known: dict[PeerId, list[Announcement]] = {}  # newest first, at most _CANDIDATES each
        self._hints = Hints()
        self._attempts = Attempts(peer_id)
        self._addresses: dict[PeerAddress, AddressState] = {}
        self._dialers: dict[PeerId, anyio.CancelScope] = {}
        self._left: dict[PeerId, int] = {}
        self._probing: set[PeerId] = set()
        self._detector = FailureDetector(timeout=transport.dead_after)
        self._events_tx: MemoryObjectSendStream[TransportEvent]
        self._events_rx: MemoryObjectReceiveStream[TransportEvent]
        self._events_tx, self._events_rx = anyio.create_memory_object_stream[TransportEvent](65536)
        self._inbox_bytes = 0
        self._found_at: dict[str, float] = {}  # when each peer (or "@address") was first known
        self._answered_at: dict[str, float] = {}  # when each found peer last answered a handshake
        self._opened_at = math.inf
        self._seen: frozenset[str] = frozenset()  # last PeersSeen reported
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self._discovery: Discovery | None = None
        self._reannouncing = False
        self._closing = False
        self._lobby = lobby or Lobby(secret=bool(secret))
        self._started = started

    # -- the Endpoint seam ----------------------------------------------------------------

    @property
    def peers(self) -> frozenset[PeerId]:
        """Peers with an open link now."""
        return frozenset(peer for peer, link in self._links.items() if link.up and not link.dead)

    def _link(self, peer: PeerId) -> Link:
        link = self._links.get(peer)
        if link is None or link.dead or not link.up or self._closing:
            raise ChannelClosed(f"no link to {peer}")
        return link

    def send(self, peer: PeerId, data: bytes) -> None:
        """Queue ``data`` (any size up to ``max_frame``) for ``peer`` on the reliable lane; never blocks.

        ChannelClosed if there is no link (or it was just dropped for not keeping up).
        """
        self._link(peer).send(data)

    def send_datagram(self, peer: PeerId, data: bytes) -> None:
        """Send ``data`` on the datagram lane: it may be lost or overtake earlier frames.

        Over :data:`MAX_DATAGRAM` bytes it goes on the reliable lane instead.
        """
        self._link(peer).send_datagram(data)

    async def receive(self) -> TransportEvent:
        """Wait for the next event; ``anyio.EndOfStream`` once the endpoint is closed."""
        try:
            return self._taken(await self._events_rx.receive())
        except anyio.ClosedResourceError:
            raise anyio.EndOfStream from None

    def receive_nowait(self) -> TransportEvent:
        """The next event if one is ready now, else raise ``anyio.WouldBlock`` (never waits)."""
        try:
            return self._taken(self._events_rx.receive_nowait())
        except anyio.ClosedResourceError:
            raise anyio.EndOfStream from None

    def _taken(self, event: TransportEvent) -> TransportEvent:
        if isinstance(event, Frame):
            self._inbox_bytes -= len(event.data)
        return event

    def _deliver(self, peer: PeerId, data: bytes) -> bool:
        """A link received a frame: queue it for the node; False if the inbox is over its bound."""
        if self._inbox_bytes + len(data) > INBOX_LIMIT:
            return False
        try:
            self._events_tx.send_nowait(Frame(peer=peer, data=data))
        except anyio.WouldBlock:
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return True  # closing: nobody listens any more
        self._inbox_bytes += len(data)
        return True

    def _heard(self, peer: PeerId) -> None:
        """A link heard from ``peer``; the first time, the link is up (before what it delivers)."""
        link = self._links.get(peer)
        if link is None or link.dead:
            return
        if not link.up:
            # Our side of the channels opened, but the peer's may still be opening (a lost SCTP
            # COOKIE ACK on a lossy Wi-Fi): only once it is heard is the link up, and only then
            # can its silence mean death.
            try:
                self._events_tx.send_nowait(PeerUp(peer=peer, name=link.name))
            except anyio.WouldBlock:
                link.drop("overran our inbox")
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # closing: nobody listens any more
            link.heard_first.set()
            self._log.debug("link to %s up", peer)
        self._detector.heard(peer, anyio.current_time())

    # -- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> LanEndpoint:
        try:
            await self._open()
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def _open(self) -> None:
        self.interfaces = usable_interfaces(self._t.interfaces)
        listener = await self._listen()
        await self._stack.enter_async_context(listener)
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        try:
            self._discovery = await self._stack.enter_async_context(
                Discovery(
                    interfaces=self.interfaces,
                    me=Announcement(
                        peer=self.id,
                        name=self.name,
                        room=self.room,
                        version=PROTOCOL_VERSION,
                        incarnation=self.incarnation,
                        port=self.signaling_port,
                        addresses=tuple(self.interfaces),
                        role=self.role,
                        lobby=self._lobby,
                    ),
                )
            )
        except TransportError as exc:
            if not (self._t.peers or self._t.port):
                raise  # nobody could find us, nor we anybody
            self._log.warning("%s: reachable by address only (port %d)", exc, self.signaling_port)
        # the room key (scrypt: tens of ms) is derived while the mDNS announcement goes out; no
        # handshake runs before it is there (connections wait in the listen backlog meanwhile)
        self._key = await anyio.to_thread.run_sync(derive_key, self.room, self._secret)
        self._tg.start_soon(self._serve, listener)
        if self._discovery is not None:
            self._tg.start_soon(self._discovery_loop, self._discovery)
            if self._started is not None:
                self._tg.start_soon(self._lobby_loop, self._discovery, self._started)
        self._opened_at = anyio.current_time()
        self._tg.start_soon(self._heartbeat_loop)
        for address in self._t.peers:
            self._addresses[address] = AddressState()
            self._found_at[f"@{address}"] = anyio.current_time()
            self._tg.start_soon(self._address_loop, address)
        self._log.debug("joined %r on %s, signaling port %d", self.room, self.interfaces, self.signaling_port)

    async def _listen(self) -> Listener[SocketStream]:
        listeners: list[Listener[SocketStream]] = []
        port = self._t.port
        try:
            for address in self.interfaces:
                listener = await anyio.create_tcp_listener(local_host=address, local_port=port)
                port = listener.extra(SocketAttribute.local_port)
                listeners.append(listener)
        except OSError as exc:
            for opened in listeners:
                await opened.aclose()
            reason = exc.strerror or repr(exc)
            raise TransportError(f"cannot listen on {', '.join(self.interfaces)} TCP port {port}: {reason}") from exc
        self.signaling_port = port
        return MultiListener(listeners)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        with anyio.CancelScope(shield=True):
            self._closing = True
            links = list(self._links.values())
            for link in links:
                if link.up and not link.dead:
                    link.send_goodbye()
            with anyio.move_on_after(1):
                async with anyio.create_task_group() as tg:
                    if self._discovery is not None:
                        tg.start_soon(self._discovery.withdraw)
                    for link in links:
                        tg.start_soon(self._flush, link)
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
        try:
            return await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            self._events_tx.close()
            self._events_rx.close()

    async def _flush(self, link: Link) -> None:
        """Wait until everything queued for ``link`` left this process (or the link died)."""
        # aiortc signals no "fully drained" event: poll, bounded by the caller's timeout.
        while not link.dead and not link.idle:  # noqa: ASYNC110
            await anyio.sleep(0.005)

    # -- owned tasks ----------------------------------------------------------------------

    async def _emit(self, event: TransportEvent) -> None:
        try:
            # send_nowait first: anyio's send() yields a loop turn per item even with room,
            # which would hand the node one frame per turn and defeat its batching
            self._events_tx.send_nowait(event)
        except anyio.WouldBlock:
            try:
                await self._events_tx.send(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the endpoint is closing
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the endpoint is closing

    async def _serve(self, listener: Listener[SocketStream]) -> None:
        await listener.serve(self._handle_incoming)

    async def _heartbeat_loop(self) -> None:
        interval = self._t.heartbeat_interval
        next_beat = anyio.current_time()
        wake = next_beat
        while True:
            now = anyio.current_time()
            if now - wake > _STALL:  # our own loop stalled: don't blame the peers for it
                self._detector.stalled(now - wake)
            if now >= next_beat:
                for link in list(self._links.values()):
                    if not link.dead:  # a link not heard yet too: its peer waits to hear from us
                        try:
                            link.beat()
                        except ChannelClosed:
                            pass  # dropped: its owner reports it
                next_beat = now + interval
            for peer in self._detector.expired(now):
                silent = self._links.get(peer)
                if silent is not None and not silent.dead:
                    self._log.warning("%s silent for over %.2f s: declared dead", peer, self._t.dead_after)
                    silent.drop("silent")
            seen = self._still_joining(now)
            if seen != self._seen:
                self._seen = seen
                self._log.debug("found, no link yet: %s", sorted(seen))
                await self._emit(PeersSeen(peers=seen))
            deadline = self._detector.deadline
            wake = max(now, next_beat if deadline is None else min(next_beat, deadline + 0.001))
            await anyio.sleep(max(0.0, wake - anyio.current_time()))

    def _still_joining(self, now: float) -> frozenset[str]:
        """Peers found (or ``peers=`` addresses) with no link yet, found less than two ``connect_timeout`` ago.

        A peer stops counting sooner once two dials to it failed (a stale mDNS record of a
        peer that is gone); on a lossy Wi-Fi a live peer's link can take several seconds.
        Once this endpoint is open that long, only peers whose handshake proved the room key
        lately count: mDNS records are hints anyone can send, and a stream of made-up members
        must not keep a new room from electing.
        """
        window = 2 * self._t.connect_timeout
        young = now - self._opened_at < window  # past the first window, only peers that proved the room key
        for key, at in list(self._found_at.items()):
            answered = now - self._answered_at.get(key, -math.inf) < window  # its handshake got that far lately
            in_time = now - at < window or (answered and now - at < _JOINING_LIMIT * self._t.connect_timeout)
            if not in_time or not (answered or young):
                del self._found_at[key]  # a link had its chance: found long ago, it no longer counts
                self._answered_at.pop(key, None)
        linked = self.peers
        seen: set[str] = {
            peer
            for peer, records in self._known.items()
            if peer in self._found_at
            and peer not in linked
            and peer not in self._left
            and any(  # a record that refused our secret, or a spectator's (it never votes), counts for nothing
                (peer, r.port, r.addresses, r.incarnation) not in self._bad and r.role != "spectator" for r in records
            )
        }
        seen.update(
            key
            for address, state in self._addresses.items()
            if state.peer is None and not state.ours and (key := f"@{address}") in self._found_at
        )
        if now - self._opened_at < _DISCOVERY_GRACE:
            seen.add("?")  # peers already here answer our first mDNS query within this long
        return frozenset(seen)

    async def _lobby_loop(self, discovery: Discovery, started: Callable[[], bool]) -> None:
        """Re-announce the lobby hints whenever ``started()`` changes (looked at every ``_LOBBY_POLL``)."""
        while True:
            now_started = bool(started())
            if now_started != self._lobby.started:
                self._lobby = dataclasses.replace(self._lobby, started=now_started)
                self._log.debug("lobby: the room %s", "started" if now_started else "holds no resource")
                await discovery.update_lobby(self._lobby)
            await anyio.sleep(_LOBBY_POLL)

    async def _discovery_loop(self, discovery: Discovery) -> None:
        async for event in discovery.events:
            match event:
                case Announcement():
                    self._on_announcement(event)
                case PeerGone(peer=peer):
                    # a goodbye is as much a hint as an announcement: it never touches a live link,
                    # and stops only the dial loop of a peer never proven
                    self._log.debug("%s withdrew its mDNS record", peer)
                    if peer not in self._proven:
                        self._known.pop(peer, None)
                        dialer = self._dialers.get(peer)
                        if dialer is not None and peer not in self._attempts and peer not in self._hints:
                            dialer.cancel()

    def _on_announcement(self, ann: Announcement) -> None:
        """An mDNS record: a hint to dial, kept beside (never instead of) other records of that id."""
        peer = ann.peer
        candidates = self._known.get(peer)
        if candidates is None:
            if len(self._known) >= _KNOWN_LIMIT and not self._make_room():
                self._log.debug("ignoring %s: already %d peers known over mDNS", peer, len(self._known))
                return
            candidates = self._known[peer] = []
            self._log.debug("discovered %s", peer)
            self._found_at.setdefault(peer, anyio.current_time())
        where = (ann.port, ann.addresses, ann.incarnation)
        news = all((c.port, c.addresses, c.incarnation) != where for c in candidates)
        candidates[:] = [ann, *(c for c in candidates if (c.port, c.addresses, c.incarnation) != where)]
        del candidates[_CANDIDATES:]
        held = self._attempts.get(peer)
        if held is not None and held.opened and ann.incarnation > held.incarnation:
            # Maybe it restarted, maybe someone copies its id: only a handshake in which the new
            # incarnation proves the peer's key replaces the link (mesh.admit), never the record.
            self._log.info("%s announces incarnation %d: checking it with a handshake", peer, ann.incarnation)
            self._probe(peer, ann)
        if not self.id < peer and news and held is None and len(candidates) == 1:
            self._reannounce_soon()  # the lower id dials: tell it at once that we are here
        if news and held is None:
            self._ensure_dialer(peer, restart=True)  # a new dial loop reads the news at once

    def _make_room(self) -> bool:
        """Forget the oldest mDNS peer never proven and not being dialed with success; False if none."""
        for peer in self._known:
            if peer not in self._proven and peer not in self._attempts:
                del self._known[peer]
                dialer = self._dialers.get(peer)
                if dialer is not None and peer not in self._hints:
                    dialer.cancel()
                return True
        return False

    def _probe(self, peer: PeerId, ann: Announcement) -> None:
        """One dial to where ``ann`` says ``peer`` listens (one probe per peer at a time)."""
        if self._tg is None or self._closing or peer in self._probing:
            return
        self._probing.add(peer)
        self._tg.start_soon(self._run_probe, peer, ann)

    async def _run_probe(self, peer: PeerId, ann: Announcement) -> None:
        self._log.debug("probing %s at %s port %d", peer, ann.addresses, ann.port)
        try:
            await self._dial_once(ann.addresses, ann.port, expected=peer)
        except Declined:
            pass  # the same incarnation we hold: nothing changed
        except Refused as exc:  # our address is refused for a while: says nothing of the record
            self._count_failure(exc)
            self._note_auth_failure(exc)
        except (AuthenticationFailed, ConnectError, RemoteProtocolError) as exc:
            self._count_failure(exc)
            self._bad.add((peer, ann.port, ann.addresses, ann.incarnation))
            self._log.info("%s's record of incarnation %d did not prove itself: %s", peer, ann.incarnation, exc)
        finally:
            await anyio.sleep(1.0)  # at most one probe per peer a second
            self._probing.discard(peer)

    def _reannounce_soon(self) -> None:
        if self._reannouncing or self._tg is None or self._discovery is None:
            return
        self._reannouncing = True
        self._tg.start_soon(self._reannounce, self._discovery)

    async def _reannounce(self, discovery: Discovery) -> None:
        await anyio.sleep(0.005)  # one announcement for newcomers that arrive together
        self._reannouncing = False
        await discovery.reannounce()

    # -- join by address and peer exchange (rules: transport/mesh.py) -------------------------

    def _contact(self) -> Contact:
        return Contact(peer=self.id, addresses=tuple(self.interfaces[:MAX_ADDRESSES]), port=self.signaling_port)

    def _learn(self, members: Sequence[Contact], *, source: PeerId) -> None:
        """Peer exchange: dial the members ``source`` passed on that we hold nothing with (hints only)."""
        allow_loopback = any(ipaddress.IPv4Address(a).is_loopback for a in self.interfaces)
        for member in members:
            peer = member.peer
            if peer == self.id or peer in self._attempts:
                continue
            addresses = hint_addresses(member.addresses, allow_loopback=allow_loopback)
            if not addresses:
                continue
            if not self._hints.learn(Contact(peer=peer, addresses=addresses, port=member.port)):
                self._log.debug("peer exchange from %s: %d hints held, %s ignored", source, len(self._hints), peer)
                continue
            self._ensure_dialer(peer)

    def _ensure_dialer(self, peer: PeerId, *, restart: bool = False) -> None:
        """Run a dial loop for ``peer`` (known by id) unless one runs already.

        A never-proven peer whose loop gave up is dialed again only after a pause that doubles
        each time (news or not), so fake records cannot keep us dialing.
        """
        dialer = self._dialers.get(peer)
        if dialer is None and peer not in self._proven:
            gave_up = self._gave_up.get(peer)
            if gave_up is not None and anyio.current_time() < gave_up[0] + gave_up[1]:
                return
        if dialer is not None and restart:
            dialer.cancel()
            dialer = None
        if dialer is None and self._tg is not None and not self._closing:
            scope = anyio.CancelScope()
            self._dialers[peer] = scope
            self._tg.start_soon(self._dial_loop, peer, scope)

    def _target(self, peer: PeerId) -> tuple[Contact, Announcement | None] | None:
        """Where to dial ``peer`` next, and the mDNS record that said so; None: do not dial it."""
        hint = self._hints.get(peer)
        for ann in self._known.get(peer, ()):
            if ann.incarnation == self._left.get(peer) or (peer, ann.port, ann.addresses, ann.incarnation) in self._bad:
                continue  # it said goodbye, or that record failed to prove the peer (or our secret)
            extra = () if hint is None or hint.port != ann.port else hint.addresses
            addresses = tuple(dict.fromkeys((*ann.addresses, *extra)))
            return Contact(peer=peer, addresses=addresses, port=ann.port), ann
        return None if hint is None else (hint, None)

    def _prove(self, peer: PeerId) -> None:
        """An authenticated link with ``peer`` opened: from now on it is dialed for as long as it is known."""
        self._proven[peer] = None
        self._proven.move_to_end(peer)
        while len(self._proven) > _PROVEN_LIMIT:
            self._proven.popitem(last=False)
        self._gave_up.pop(peer, None)

    def _give_up(self, peer: PeerId) -> None:
        """A never-proven peer's dial loop stops: its next one waits (see :meth:`_ensure_dialer`)."""
        last = self._gave_up.get(peer)
        pause = _RETRY_UNPROVEN[0] if last is None else min(last[1] * 2, _RETRY_UNPROVEN[1])
        self._gave_up[peer] = (anyio.current_time(), pause)
        if len(self._gave_up) > _KNOWN_LIMIT + HINT_LIMIT:  # forget the oldest first
            del self._gave_up[next(iter(self._gave_up))]
        self._hints.forget(peer)

    async def _dial_loop(self, peer: PeerId, scope: anyio.CancelScope) -> None:
        """Hold a link with ``peer``, known by id, until it is gone, said goodbye or refused our secret.

        Over mDNS the lower id dials at once and the higher id only after ``_FALLBACK_DIAL``;
        a peer learnt by peer exchange is dialed at once (it may not know us). A peer never
        proven is dialed ``_HINT_TRIES`` times at most, then the loop stops.
        """
        backoff, failures, waited = _BACKOFF[0], 0, False
        try:
            with scope:
                while not self._closing:
                    held = self._attempts.get(peer)
                    if held is not None:
                        await held.ended.wait()
                        if not held.opened:
                            continue  # a handshake that came to nothing: dial again
                    else:
                        target = self._target(peer)
                        if target is None:
                            return
                        contact, ann = target
                        if self.id > peer and not waited and ann is not None and peer not in self._hints:
                            waited = True
                            await anyio.sleep(_FALLBACK_DIAL)
                            continue
                        started = anyio.current_time()
                        try:
                            await self._dial_once(contact.addresses, contact.port, expected=peer)
                        except Declined:
                            if peer not in self._attempts:  # the other side still holds a link we lost
                                await anyio.sleep(backoff)
                                backoff = min(backoff * _GROWTH, _BACKOFF[1])
                            continue
                        except (AuthenticationFailed, ConnectError, RemoteProtocolError) as exc:
                            self._count_failure(exc)
                            if self._answered_at.get(peer, -math.inf) < started:
                                failures += 1  # it never answered: maybe gone (a link that was slow does not count)
                            if failures >= 2:  # not a peer that is about to link: stop waiting for it
                                self._found_at.pop(peer, None)
                            pause = backoff
                            if isinstance(exc, Refused):  # our address, for a while: not this record
                                self._log.warning("%s: %s", peer, exc)
                                self._note_auth_failure(exc)
                                pause = max(backoff, min(exc.retry_after, _PENALTY[1]))
                            elif isinstance(exc, AuthenticationFailed):
                                self._log.warning("%s: %s", peer, exc)
                                self._note_auth_failure(exc)
                                if ann is None:
                                    self._hints.forget(peer)  # the hint led to someone else
                                else:  # that record: until the peer announces another incarnation
                                    self._bad.add((peer, ann.port, ann.addresses, ann.incarnation))
                                    if len(self._bad) > 4 * _KNOWN_LIMIT:
                                        self._bad.pop()
                                continue
                            if peer not in self._proven and failures >= _HINT_TRIES:
                                self._log.debug("giving up on %s (never proven): %s", peer, exc)
                                self._give_up(peer)
                                return
                            self._log.debug("dialing %s failed: %s; retry in %.2f s", peer, exc, pause)
                            await anyio.sleep(pause)
                            backoff = min(backoff * _GROWTH, _BACKOFF[1])
                            continue
                        if anyio.current_time() - started > _STABLE_LINK:
                            backoff, failures = _BACKOFF[0], 0
                    # a link with it was open and closed
                    if peer not in self._known:
                        self._hints.forget(peer)  # a hint is spent once its link closed
                        return
                    waited = False
                    await anyio.sleep(backoff)
                    backoff = min(backoff * _GROWTH, _BACKOFF[1])
        finally:
            if self._dialers.get(peer) is scope:
                del self._dialers[peer]

    async def _address_loop(self, address: PeerAddress) -> None:
        """Hold a link with whoever listens at a ``peers=`` address, for as long as we run.

        A dial that fails is retried after a pause that grows up to ``_BACKOFF[1]``; an
        outage is logged once (INFO), the retries at DEBUG.
        """
        state = self._addresses.setdefault(address, AddressState())
        if address.port == self.signaling_port and address.host in self.interfaces:
            state.ours = True  # the same list on every player's machine: ours is in it
            return
        backoff, cap = _BACKOFF
        outage = False
        while not self._closing:
            held = None if state.peer is None else self._attempts.get(state.peer)
            if held is not None:
                await held.ended.wait()
                continue
            started, pause = anyio.current_time(), backoff
            try:
                await self._dial_once([address.host], address.port, expected=None, state=state)
            except Ourselves:
                state.ours = True
                self._log.debug("%s is our own signaling address", address)
                return
            except Declined as exc:
                state.peer, state.error = exc.peer, None
                if exc.peer in self._attempts:
                    continue
            except (AuthenticationFailed, ConnectError, RemoteProtocolError) as exc:
                self._count_failure(exc)
                if isinstance(exc, Refused):
                    pause = max(pause, min(exc.retry_after, _PENALTY[1]))
                state.error = f"{'refused' if isinstance(exc, AuthenticationFailed) else 'unreachable'}: {exc}"
                if not outage:
                    outage = True
                    if isinstance(exc, AuthenticationFailed):
                        self._note_auth_failure(exc)
                        self._log.warning("%s: %s; retrying every %.0f s at most", address, exc, cap)
                    else:
                        self._log.info("cannot reach %s yet (%s); retrying every %.0f s at most", address, exc, cap)
                else:
                    self._log.debug("%s: %s", address, exc)
            else:
                state.error, outage = None, False
                if anyio.current_time() - started > _STABLE_LINK:
                    backoff = pause = _BACKOFF[0]
            await anyio.sleep(pause)
            backoff = min(backoff * _GROWTH, cap)

    def _note_auth_failure(self, exc: AuthenticationFailed) -> None:
        """Keep a short text of the failure (the exception itself would keep its whole traceback alive)."""
        self.auth_failures.append(str(exc)[:200])

    def _answered(self, peer: PeerId) -> None:
        """A found peer proved it is alive (a handshake with it got this far): keep it counted as joining."""
        if peer in self._found_at:
            self._answered_at[peer] = anyio.current_time()

    def _count_failure(self, exc: Exception) -> None:
        if isinstance(exc, AuthenticationFailed):
            self.refused["wrong secret"] += 1
        elif isinstance(exc, RemoteProtocolError):
            self.refused["bad or cut-short handshake"] += 1
        else:
            self.refused["unreachable or timed out"] += 1

    def status(self) -> LanStatus:
        """What this endpoint knows of the room now: interfaces, peers seen, links, refusals."""
        linked = self.peers
        return LanStatus(
            interfaces=tuple(self.interfaces),
            port=self.signaling_port,
            mdns=self._discovery is not None,
            seen=tuple(sorted(self._known)),
            learnt=tuple(sorted(p for p in self._hints.peers() if p not in self._known)),
            linked=tuple(sorted(linked)),
            addresses=tuple((str(a), state.describe(linked)) for a, state in self._addresses.items()),
            refused=tuple(sorted(self.refused.items())),
        )

    # -- dialing ----------------------------------------------------------------------------

    async def _dial_once(
        self, addresses: Sequence[str], port: int, *, expected: PeerId | None, state: AddressState | None = None
    ) -> PeerId:
        """Dial, authenticate, then run the link until it closes; return who answered.

        Raises ConnectError or RemoteProtocolError (no link), AuthenticationFailed, Declined (a
        link of the pair is already held, at either end) or Ourselves. ``state`` (a ``peers=``
        address) learns who answered as soon as it is authenticated. The listener must prove
        itself within :data:`AUTH_DEADLINE`; the whole exchange within ``connect_timeout``.
        """
        scope = anyio.CancelScope()
        session: RtcSession | None = None
        attempt: Attempt | None = None
        linked = False
        deadline = anyio.CancelScope(deadline=anyio.current_time() + min(AUTH_DEADLINE, self._t.connect_timeout))

        async def create_offer(challenge: Challenge) -> Exchange:
            nonlocal session, attempt
            deadline.deadline = anyio.current_time() + self._t.connect_timeout  # it proved itself
            if challenge.peer == self.id:
                raise Ourselves(f"{addresses} port {port} is our own address")
            if state is not None:
                state.peer, state.error = challenge.peer, None
            self._answered(challenge.peer)
            attempt = self._attempts.claim(
                challenge.peer, dialer=self.id, incarnation=challenge.incarnation, scope=scope
            )
            if attempt is None:
                raise Declined(challenge.peer)
            # where it proved the key, passed on from now (its Answer tells more): see mesh.py
            attempt.contact = with_address(Contact(peer=challenge.peer, addresses=(), port=port), reached)
            session = RtcSession(addresses=self.interfaces)
            sdp = await session.create_offer()
            return Exchange(sdp=sdp, me=self._contact(), members=self._attempts.contacts(exclude=challenge.peer))

        reached: str | None = None
        try:
            with scope:
                with deadline:
                    stream = await self._connect_tcp(addresses, port)
                    reached = _remote_host(stream)
                    async with stream:
                        result = await run_dialer(
                            stream,
                            key=self._key,
                            identity=self.identity,
                            receiver=expected,
                            name=self.name,
                            incarnation=self.incarnation,
                            create_offer=create_offer,
                        )
                    assert session is not None
                    assert attempt is not None
                    await session.accept_answer(result.answer.sdp)
                if deadline.cancelled_caught:
                    raise ConnectError(f"signaling with {expected or addresses[0]} timed out")
                assert attempt is not None
                assert session is not None
                attempt.contact = with_address(result.answer.me, reached)
                self._learn(result.answer.members, source=result.peer)
                linked = attempt.opened = True
                await self._run_link(session, peer=result.peer, name=result.name, incarnation=result.incarnation)
            if attempt is None:
                raise ConnectError(f"dialing {expected or addresses[0]} was cancelled")  # pragma: no cover
            if not linked:
                raise Declined(attempt.peer)  # another handshake of the pair won while ours ran
            return attempt.peer
        finally:
            if attempt is not None:
                self._attempts.release(attempt)
            if not linked:
                await self._close_session(session)

    async def _connect_tcp(self, addresses: Sequence[str], port: int) -> SocketStream:
        """A TCP connection to the first of ``addresses`` that answers (each tried in turn, overlapping).

        Each address is tried up to ``_SYN_TRIES`` times, ``_NEXT_ADDRESS`` apart: a lost SYN
        otherwise costs the kernel's 1 s retransmission timeout, and a lossy Wi-Fi loses some.
        """
        if not addresses:
            raise ConnectError("no address to dial")
        addresses = [address for address in addresses for _ in range(_SYN_TRIES)]
        errors: list[str] = []
        won: list[SocketStream] = []
        failed = [anyio.Event() for _ in addresses]

        async def attempt(i: int, address: str, tg: TaskGroup) -> None:
            if i:  # the next address once the previous one failed, or after a short while
                with anyio.move_on_after(_NEXT_ADDRESS):
                    await failed[i - 1].wait()
            try:
                stream = await anyio.connect_tcp(address, port)
            except OSError as exc:
                cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc  # anyio wraps the real one
                errors.append(f"{address}:{port}: {os.strerror(cause.errno) if cause.errno else cause}")
                failed[i].set()
                return
            if won:
                await stream.aclose()
                return
            won.append(stream)
            tg.cancel_scope.cancel()

        try:
            async with anyio.create_task_group() as tg:
                for i, address in enumerate(addresses):
                    tg.start_soon(attempt, i, address, tg)
        except BaseException:
            for stream in won:
                await stream.aclose()
            raise
        if not won:
            raise ConnectError("; ".join(dict.fromkeys(errors)))
        return won[0]

    # -- accepting --------------------------------------------------------------------------

    def _admit_incoming(self, source: str) -> str | None:
        """Why a new incoming handshake from ``source`` is refused now, or None (it may go on)."""
        if self._closing:
            return "closing"
        strikes = self._strikes.get(source)
        if strikes is not None and anyio.current_time() < strikes[1]:
            return _STRUCK
        if sum(1 for where in self._incoming.values() if where == source) >= _MAX_PER_ADDRESS:
            return "refused: too many handshakes from that address"
        if len(self._incoming) >= _MAX_HANDSHAKES:  # the oldest unauthenticated one makes room
            oldest, _ = self._incoming.popitem(last=False)
            oldest.cancel()
            self.refused["pushed out by newer handshakes"] += 1
        return None

    def _strike(self, source: str) -> None:
        """A handshake from ``source`` failed: after a few, refuse that address for a while (doubling)."""
        count, _ = self._strikes.pop(source, (0, 0.0))
        count += 1
        until = 0.0
        if count >= _STRIKES:
            until = anyio.current_time() + min(_PENALTY[0] * 2 ** (count - _STRIKES), _PENALTY[1])
        self._strikes[source] = (count, until)
        while len(self._strikes) > _ADDRESSES_KEPT:
            self._strikes.popitem(last=False)

    async def _tell_refused(self, stream: SocketStream, source: str) -> None:
        """Tell a dialer from a refused ``source`` why, and when it may retry (unsigned, bounded)."""
        _, until = self._strikes.get(source, (0, 0.0))
        retry = max(1, math.ceil(until - anyio.current_time()))
        self._refusing += 1
        try:
            await refuse(stream, Refusal(reason=_REFUSAL_REASON, retry=retry), linger=_REFUSAL_LINGER)
        finally:
            self._refusing -= 1

    async def _handle_incoming(self, stream: SocketStream) -> None:
        came_from = _remote_host(stream)
        source = came_from or "?"
        refusal = self._admit_incoming(source)
        if refusal is not None:
            if refusal != "closing":
                self.refused[refusal] += 1
            async with stream:
                if refusal == _STRUCK and self._refusing < _REFUSING:
                    await self._tell_refused(stream, source)
            return
        scope = anyio.CancelScope(deadline=anyio.current_time() + min(AUTH_DEADLINE, self._t.connect_timeout))
        self._incoming[scope] = source
        session: RtcSession | None = None
        attempt: Attempt | None = None
        linked = False

        def authenticated() -> None:
            self._incoming.pop(scope, None)  # no longer a stranger: never pushed out, more time
            scope.deadline = anyio.current_time() + self._t.connect_timeout
            self._strikes.pop(source, None)

        async def create_answer(hello: Hello, offer: Exchange) -> Exchange:
            nonlocal session, attempt
            sender = hello.sender
            self._answered(sender)
            attempt = self._attempts.claim(sender, dialer=sender, incarnation=hello.incarnation, scope=scope)
            self._log.debug("%s dialed us: %s", sender, "refused" if attempt is None else "claimed")
            if attempt is None:
                raise Declined(hello.sender)
            attempt.contact = with_address(offer.me, came_from)
            self._learn(offer.members, source=hello.sender)
            session = RtcSession(addresses=self.interfaces)
            sdp = await session.accept_offer(offer.sdp)
            return Exchange(sdp=sdp, me=self._contact(), members=self._attempts.contacts(exclude=hello.sender))

        failed: str | None = None
        try:
            with scope:
                try:
                    async with stream:
                        hello = await run_listener(
                            stream,
                            key=self._key,
                            identity=self.identity,
                            name=self.name,
                            incarnation=self.incarnation,
                            create_answer=create_answer,
                            authenticated=authenticated,
                        )
                except Declined as exc:
                    self._log.debug("%s dialed, but a link of the pair is already held", exc.peer)
                    return
                except AuthenticationFailed as exc:
                    self._log.warning("refused a dialer: %s", exc)
                    self._note_auth_failure(exc)
                    failed = "wrong secret"
                    return
                except (ConnectError, RemoteProtocolError) as exc:
                    self._log.info("refused a signaling connection: %s", exc)
                    failed = "bad or cut-short handshake"
                    return
                finally:
                    self._incoming.pop(scope, None)
                assert session is not None
                assert attempt is not None
                scope.deadline = math.inf  # the handshake is over: the link lives until it closes
                linked = attempt.opened = True
                try:
                    await self._run_link(session, peer=hello.sender, name=hello.name, incarnation=hello.incarnation)
                except ConnectError as exc:
                    self._log.info("link from %s did not open: %s", hello.sender, exc)
            if scope.cancelled_caught and not linked:
                failed = "bad or cut-short handshake"  # too slow to authenticate, or pushed out
        finally:
            if failed is not None:
                self.refused[failed] += 1
                self._strike(source)
            if attempt is not None:
                self._attempts.release(attempt)
            if not linked:
                await self._close_session(session)

    # -- one open link --------------------------------------------------------------------

    async def _close_session(self, session: RtcSession | None) -> None:
        if session is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            await session.close()

    async def _run_link(self, session: RtcSession, *, peer: PeerId, name: str, incarnation: int) -> None:
        """Own one link from channel-open to close; ConnectError if it never opened."""
        link = Link(
            peer=peer,
            name=name,
            incarnation=incarnation,
            session=session,
            deliver=self._deliver,
            heard=self._heard,
            max_frame=self._max_frame,
        )
        session.attach(link)
        try:
            with link.scope:
                try:
                    with anyio.fail_after(self._t.connect_timeout):
                        await session.wait_open()
                except TimeoutError as exc:
                    raise ConnectError(f"data channel to {peer} did not open in time") from exc
                old = self._links.get(peer)
                if old is not None:
                    old.drop("replaced")
                    await old.finished.wait()
                if self._closing:
                    return
                self._links[peer] = link
                self._prove(peer)
                self._log.debug("link to %s open; waiting to hear from it", peer)
                with contextlib.suppress(ChannelClosed):
                    link.beat()  # the heartbeat loop beats it too: the peer may be waiting for us
                try:
                    with anyio.fail_after(self._t.connect_timeout):
                        await link.heard_first.wait()
                except TimeoutError as exc:
                    raise ConnectError(f"link to {peer} opened but {peer} was never heard") from exc
                await link.run_writer()
        finally:
            link.dead = True
            if link.graceful:
                self._left[peer] = link.incarnation
                while len(self._left) > _KNOWN_LIMIT:  # the oldest goodbyes are forgotten first
                    del self._left[next(iter(self._left))]
            if self._links.get(peer) is link:
                del self._links[peer]
                self._detector.forget(peer)
            with anyio.CancelScope(shield=True):
                await self._close_session(session)
                if link.up and not self._closing:
                    self._log.debug("link to %s closed (%s)", peer, link.reason or "ended")
                    with anyio.move_on_after(1):
                        await self._emit(PeerDown(peer=peer, graceful=link.graceful))
            link.finished.set()
