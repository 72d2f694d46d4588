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
Two live processes of one identity (one identity file used twice) see the record of their own id
that the other announces, prove it to each other in one handshake and are both told
(``IdentityInUse``); the later one keeps the links, the earlier one drops them (:mod:`.twins`).

Strangers (docs/security.md): what mDNS and peer exchange tell is a hint to dial, never proof:
nothing learnt from them closes or refuses a live, authenticated link, and a peer never proven
is dialed a few times only. Incoming handshakes are bounded per source address and in total,
must authenticate within :data:`AUTH_DEADLINE`, and an address whose handshakes keep failing
is refused for a while, told why and for how long (an unsigned ``Refusal``: the dialer's
``wait_ready`` then raises ``AuthenticationFailed`` with that reason rather than electing
itself alone); failures are counted by reason, nothing else is kept.

Every one of those decisions is made by :class:`~.meshcore.MeshCore` (pure, time as an
argument); :class:`LanEndpoint` only performs them: its tasks, :mod:`.handshake` (the
connections) and :mod:`.linkset` (the open links).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import Counter, deque
from collections.abc import MutableMapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Final, assert_never

import anyio
from anyio.abc import Listener, SocketAttribute, SocketStream, TaskGroup
from anyio.streams.stapled import MultiListener

from ..errors import TransportError
from ..identity import Identity
from ..ids import PeerId
from ..lobby import Lobby
from .base import IdentityInUse, PeersSeen, TransportEvent
from .contact import Contact
from .discovery import Announcement, Discovery, PeerGone
from .handshake import AUTH_DEADLINE, DIAL_ERRORS, Handshakes, Twin, failure_of
from .interfaces import default_interfaces, usable_interfaces
from .link import DEFAULT_MAX_FRAME, MAX_DATAGRAM, FrameDecoder, encode_frame
from .linkset import LinkSet
from .mesh import LanStatus, Ourselves, PeerAddress, parse_peer_address
from .meshcore import (
    Beat,
    DialDeclined,
    DialNow,
    DialOutcome,
    DialState,
    DropAll,
    DropSilent,
    Effect,
    FailureKind,
    LinkClosed,
    Log,
    LogLevel,
    MeshCore,
    Pause,
    Probe,
    PushOut,
    Reannounce,
    Refuse,
    ReportSeen,
    ReportTwin,
    StartAddressDialer,
    StartDialer,
    Stop,
    StopDialer,
    WaitEnded,
    WaitFor,
)
from .signaling import PROTOCOL_VERSION, Declined, derive_key

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

_LOBBY_SPACING: Final = 0.5
"""Seconds at least between two re-announcements of the lobby hints (a room that starts and stops at once sends few)."""
_PROBE_EVERY: Final = 1.0
"""At most one probe of a peer's newer incarnation per this many seconds."""
_LEVELS: Final = {LogLevel.DEBUG: logging.DEBUG, LogLevel.INFO: logging.INFO, LogLevel.WARNING: logging.WARNING}


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
    """:meth:`connect` takes ``lobby`` (what a lobby screen shows of the room; see :meth:`LanEndpoint.room_started`)."""

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
    ) -> LanEndpoint:
        """Join ``room`` as ``identity`` (``async with``); leaving says goodbye and closes every link.

        ``peer_id`` must be ``identity.id``: handshakes prove it with the identity's key (without
        an identity, ``peer_id`` must be the id of a fresh one, so pass the identity).
        ``max_frame`` raises (never lowers) the transport's own bound for this endpoint's links;
        ``role`` is announced in the mDNS record (a lobby counts players, not spectators), and so
        is ``lobby`` (hints for a lobby screen; :meth:`LanEndpoint.room_started` changes whether
        the room started).
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
        )


class _PeerLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['peer'] if self.extra else '?'}] {msg}", kwargs


class LanEndpoint:
    """One peer's presence in a room on the LAN (see :class:`LanTransport`): executes a :class:`MeshCore`."""

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
    ) -> None:
        peer_id = identity.id
        self.identity = identity
        self.id = peer_id
        self.name = name
        self.room = room
        self.role = role
        self._t = transport
        self._secret = secret
        self._log = _PeerLog(log, {"peer": peer_id})
        self.incarnation = time.time_ns()
        self.signaling_port = 0
        self.interfaces: list[str] = []
        self._core = MeshCore(
            peer_id,
            connect_timeout=transport.connect_timeout,
            dead_after=transport.dead_after,
            heartbeat_interval=transport.heartbeat_interval,
            rng=random.Random(self.incarnation),
            incarnation=self.incarnation,
        )
        self._links = LinkSet(self._core, max_frame=max_frame, connect_timeout=transport.connect_timeout, log=self._log)
        self._handshakes = Handshakes(
            self._core,
            self._links,
            identity=identity,
            name=name,
            incarnation=self.incarnation,
            connect_timeout=transport.connect_timeout,
            execute=self._execute,
            log=self._log,
        )
        self._dialers: dict[PeerId, anyio.CancelScope] = {}
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self._discovery: Discovery | None = None
        self._reannouncing = False
        self._lobby = lobby or Lobby(secret=bool(secret))
        self._started = self._lobby.started  # as last told (room_started): announced by the lobby loop
        self._lobby_changed: anyio.Event | None = None

    @property
    def refused(self) -> Counter[str]:
        """Handshakes that failed or were refused, by reason (a fixed set of words)."""
        return self._core.refused

    @property
    def auth_failures(self) -> deque[str]:
        """The latest authentication failures (peers refused, or that refused us), as short texts."""
        return self._core.auth_failures

    # -- the Endpoint seam ----------------------------------------------------------------

    @property
    def peers(self) -> frozenset[PeerId]:
        """Peers with an open link now."""
        return self._links.peers

    def send(self, peer: PeerId, data: bytes) -> None:
        """Queue ``data`` (any size up to ``max_frame``) for ``peer`` on the reliable lane; never blocks.

        ChannelClosed if there is no link (or it was just dropped for not keeping up).
        """
        self._links.get(peer).send(data)

    def send_datagram(self, peer: PeerId, data: bytes) -> None:
        """Send ``data`` on the datagram lane: it may be lost or overtake earlier frames.

        Over :data:`MAX_DATAGRAM` bytes it goes on the reliable lane instead.
        """
        self._links.get(peer).send_datagram(data)

    async def receive(self) -> TransportEvent:
        """Wait for the next event; ``anyio.EndOfStream`` once the endpoint is closed."""
        return await self._links.receive()

    def receive_nowait(self) -> TransportEvent:
        """The next event if one is ready now, else raise ``anyio.WouldBlock`` (never waits)."""
        return self._links.receive_nowait()

    def status(self) -> LanStatus:
        """What this endpoint knows of the room now: interfaces, peers seen, links, refusals."""
        linked = self.peers
        known = self._core.known
        return LanStatus(
            interfaces=tuple(self.interfaces),
            port=self.signaling_port,
            mdns=self._discovery is not None,
            seen=tuple(sorted(known)),
            learnt=tuple(sorted(p for p in self._core.hints.peers() if p not in known)),
            linked=tuple(sorted(linked)),
            addresses=tuple((str(a), state.describe(linked)) for a, state in self._core.addresses.items()),
            refused=tuple(sorted(self.refused.items())),
            mdns_refused=tuple(sorted(self._discovery.refused.items())) if self._discovery is not None else (),
        )

    def room_started(self, started: bool) -> None:
        """The room holds a resource now, or no longer: the lobby hints say so, re-announced over mDNS at once."""
        self._started = started
        if self._lobby_changed is not None:
            self._lobby_changed.set()

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
            me = Announcement(
                peer=self.id,
                name=self.name,
                room=self.room,
                version=PROTOCOL_VERSION,
                incarnation=self.incarnation,
                port=self.signaling_port,
                addresses=tuple(self.interfaces),
                role=self.role,
                lobby=self._lobby,
            )
            self._discovery = await self._stack.enter_async_context(Discovery(interfaces=self.interfaces, me=me))
        except TransportError as exc:
            if not (self._t.peers or self._t.port):
                raise  # nobody could find us, nor we anybody
            self._log.warning("%s: reachable by address only (port %d)", exc, self.signaling_port)
        # the room key (scrypt: tens of ms) is derived while the mDNS announcement goes out; no
        # handshake runs before it is there (connections wait in the listen backlog meanwhile)
        self._handshakes.key = await anyio.to_thread.run_sync(derive_key, self.room, self._secret)
        self._tg.start_soon(listener.serve, self._handshakes.handle_incoming)
        if self._discovery is not None:
            self._tg.start_soon(self._discovery_loop, self._discovery)
            self._tg.start_soon(self._lobby_loop, self._discovery)
        now = anyio.current_time()
        effects = self._core.open(now, interfaces=self.interfaces, port=self.signaling_port, addresses=self._t.peers)
        self._tg.start_soon(self._heartbeat_loop)
        self._execute(effects)
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
            self._core.close()
            links = self._links.say_goodbye()
            with anyio.move_on_after(1):
                async with anyio.create_task_group() as tg:
                    if self._discovery is not None:
                        tg.start_soon(self._discovery.withdraw)
                    for link in links:
                        tg.start_soon(self._links.flush, link)
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
        try:
            return await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            self._links.close()

    # -- effects --------------------------------------------------------------------------

    def _execute(self, effects: list[Effect]) -> None:
        """Perform what the core decided (nothing here waits: what takes time runs in a task)."""
        tg = self._tg
        assert tg is not None, "the core decides nothing before open()"
        for effect in effects:
            match effect:
                case Log(level=level, text=text):
                    self._log.log(_LEVELS[level], "%s", text)
                case StartDialer(dial=dial):
                    old = self._dialers.pop(dial.peer, None)
                    if old is not None:
                        old.cancel()
                    self._dialers[dial.peer] = scope = anyio.CancelScope()
                    tg.start_soon(self._dial_loop, dial, scope)
                case StopDialer(peer=peer):
                    dialer = self._dialers.get(peer)
                    if dialer is not None:
                        dialer.cancel()
                case StartAddressDialer(address=address):
                    tg.start_soon(self._address_loop, address)
                case Probe(peer=peer, record=record):
                    tg.start_soon(self._run_probe, peer, record)
                case Reannounce():
                    if not self._reannouncing and self._discovery is not None:
                        self._reannouncing = True
                        tg.start_soon(self._reannounce, self._discovery)
                case PushOut(handle=handle):
                    self._handshakes.push_out(handle)
                case Beat():
                    self._links.beat()
                case DropSilent(peer=peer, after=after):
                    self._links.drop_silent(peer, after)
                case ReportTwin(superseded=superseded, detail=detail):
                    tg.start_soon(self._links.emit, IdentityInUse(superseded=superseded, detail=detail))
                case DropAll():
                    self._handshakes.drop_all()
                case ReportSeen() | Refuse():
                    raise AssertionError(f"{effect!r} is performed by its caller")
                case _:
                    assert_never(effect)

    # -- owned tasks ----------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            for effect in self._core.tick(anyio.current_time(), linked=self.peers):
                if isinstance(effect, ReportSeen):
                    self._log.debug("found, no link yet: %s", sorted(effect.peers))
                    await self._links.emit(PeersSeen(peers=effect.peers))
                else:
                    self._execute([effect])
            await anyio.sleep(max(0.0, self._core.next_deadline() - anyio.current_time()))

    async def _lobby_loop(self, discovery: Discovery) -> None:
        """Re-announce the lobby hints when :meth:`room_started` changed them (at most every ``_LOBBY_SPACING``)."""
        while True:
            while self._started == self._lobby.started:
                self._lobby_changed = anyio.Event()
                await self._lobby_changed.wait()
            self._lobby = dataclasses.replace(self._lobby, started=self._started)
            self._log.debug("lobby: the room %s", "started" if self._started else "holds no resource")
            await discovery.update_lobby(self._lobby)
            await anyio.sleep(_LOBBY_SPACING)

    async def _discovery_loop(self, discovery: Discovery) -> None:
        async for event in discovery.events:
            match event:
                case Announcement():
                    self._execute(self._core.announced(event, anyio.current_time()))
                case PeerGone(peer=peer):
                    self._execute(self._core.withdrawn(peer))

    async def _run_probe(self, peer: PeerId, record: Announcement) -> None:
        self._log.debug("probing %s at %s port %d", peer, record.addresses, record.port)
        try:
            await self._handshakes.dial_once(record.addresses, record.port, expected=peer)
        except Declined:
            pass  # the same incarnation we hold: nothing changed
        except Twin:
            pass  # another process of our identity: reported as it proved itself
        except DIAL_ERRORS as exc:
            failure = failure_of(exc)
            self._core.probe_failed(peer, record, failure)
            if failure.kind is not FailureKind.REFUSED:  # a refusal of our address says nothing of the record
                self._log.info("%s's record of incarnation %d did not prove itself: %s", peer, record.incarnation, exc)
        finally:
            await anyio.sleep(_PROBE_EVERY)
            self._execute(self._core.probe_ended(peer))

    async def _reannounce(self, discovery: Discovery) -> None:
        await anyio.sleep(0.005)  # one announcement for newcomers that arrive together
        self._reannouncing = False
        await discovery.reannounce()

    async def _dial_loop(self, dial: DialState, scope: anyio.CancelScope) -> None:
        """Hold a link with ``dial.peer``, known by id: perform the steps :meth:`PeerDials.step` decides."""
        core, peer = self._core, dial.peer
        outcome: DialOutcome = None
        try:
            with scope:
                while True:
                    step, effects = core.dialing.step(dial, outcome, anyio.current_time())
                    self._execute(effects)
                    match step:
                        case Stop():
                            return
                        case Pause(seconds=seconds):
                            if seconds:
                                await anyio.sleep(seconds)
                            outcome = None
                        case WaitFor(attempt=held):
                            await self._handshakes.wait_ended(held)
                            outcome = WaitEnded(attempt=held)
                        case DialNow(contact=contact):
                            outcome = await self._dial(peer, contact)
                        case _:
                            assert_never(step)
        finally:
            if self._dialers.get(peer) is scope:
                del self._dialers[peer]
            core.dialer_ended(dial)

    async def _dial(self, peer: PeerId, contact: Contact) -> DialOutcome:
        """Dial ``peer`` at ``contact``; a link it opens is held until it closes."""
        try:
            await self._handshakes.dial_once(contact.addresses, contact.port, expected=peer)
        except Declined:
            return DialDeclined()
        except DIAL_ERRORS as exc:
            return failure_of(exc)
        return LinkClosed()

    async def _address_loop(self, address: PeerAddress) -> None:
        """Hold a link with whoever listens at a ``peers=`` address, for as long as we run."""
        core = self._core
        while True:
            step = core.address.next(address, anyio.current_time())
            match step:
                case Stop():
                    return
                case Pause(seconds=pause):
                    pass
                case WaitFor(attempt=held):
                    await self._handshakes.wait_ended(held)
                    continue
                case DialNow():
                    try:
                        await self._handshakes.dial_once([address.host], address.port, expected=None, address=address)
                    except Twin:
                        self._execute(core.address.twin(address))
                        return
                    except Ourselves:
                        self._execute(core.address.is_ours(address))
                        return
                    except Declined as exc:
                        pause = core.address.declined(address, exc.peer)
                    except DIAL_ERRORS as exc:
                        pause, effects = core.address.failed(address, failure_of(exc))
                        self._execute(effects)
                    else:
                        pause = core.address.linked(address, anyio.current_time())
                case _:
                    assert_never(step)
            if pause:
                await anyio.sleep(pause)
