"""LanTransport: mDNS discovery, authenticated TCP signaling and WebRTC data channels, full mesh.

Every pair of peers of a room holds one link (:mod:`.link`): a reliable, ordered lane for
frames of any size (cut into pieces and paced, so nothing waits behind megabytes inside
aiortc) and a datagram lane for heartbeats and election messages, which must never wait
behind a retransmission. A heartbeat datagram goes out on every link every
``heartbeat_interval`` (0.1 s); a link is declared dead only after ``dead_after`` (1 s) with
nothing at all heard on it: mDNS records and aiortc's own consent checks are far too slow for
liveness, and a link that still delivers anything is never torn down.

Leaving sends a goodbye frame on every channel and the mDNS goodbye at once, so others see a
graceful leave within milliseconds. A peer restarted with the same id announces a new
incarnation; the old link is dropped and a new one is made.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import MutableMapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Final

import anyio
from anyio.abc import ByteStream, Listener, SocketAttribute, SocketStream, TaskGroup
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
from ..ids import PeerId
from .base import Frame, PeerDown, PeerUp, TransportEvent
from .discovery import Announcement, Discovery, PeerGone
from .link import DEFAULT_MAX_FRAME, MAX_DATAGRAM, FrameDecoder, Link, encode_frame
from .signaling import PROTOCOL_VERSION, Hello, derive_key, new_hello, run_dialer, run_listener
from .webrtc import RtcSession

__all__ = [
    "MAX_DATAGRAM",
    "FrameDecoder",
    "LanEndpoint",
    "LanTransport",
    "default_interfaces",
    "encode_frame",
]

log = logging.getLogger(__name__)

INBOX_LIMIT: Final = 256 * 1024 * 1024
"""Bytes of received frames the node has not taken yet; a link that overruns it is dropped."""
_MAX_HANDSHAKES: Final = 32


# --- interfaces ----------------------------------------------------------------------------

_SIOCGIFADDR: Final = 0x8915


def default_interfaces() -> list[str]:
    """The machine's non-loopback IPv4 addresses (one per interface), found without sending packets."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
            address = socket.inet_ntoa(raw[20:24])
            if not ipaddress.IPv4Address(address).is_loopback:
                found.append(address)
    return found


def usable_interfaces(interfaces: Sequence[str] | None) -> list[str]:
    """Validate explicit addresses (127.0.0.1 dropped: aioice ignores it) or find the defaults."""
    if interfaces is None:
        found = default_interfaces()
        if not found:
            raise TransportError("no non-loopback IPv4 interface; pass interfaces=[...] explicitly")
        return found
    usable = []
    for address in interfaces:
        parsed = ipaddress.ip_address(address)  # ValueError if not an address
        if parsed.version != 4 or address == "127.0.0.1":
            log.warning("ignoring interface address %s (IPv4 other than 127.0.0.1 only)", address)
            continue
        usable.append(str(parsed))
    if not usable:
        raise ValueError(f"no usable interface address in {list(interfaces)}")
    return usable


# --- the transport ------------------------------------------------------------------------


class LanTransport:
    """The LAN: mDNS discovery + authenticated signaling + WebRTC data channels (full mesh).

    ``interfaces`` lists the IPv4 addresses to use (default: the machine's non-loopback ones);
    ``port`` is the signaling TCP port (0: ephemeral). A peer from which nothing at all was
    heard for ``dead_after`` seconds is declared dead; heartbeat datagrams go out every
    ``heartbeat_interval`` seconds; opening one link (signaling + ICE + DTLS + SCTP) is bounded
    by ``connect_timeout``; ``max_frame`` bounds one frame in either direction.
    """

    def __init__(
        self,
        interfaces: Sequence[str] | None = None,
        port: int = 0,
        *,
        heartbeat_interval: float = 0.1,
        dead_after: float = 1.0,
        connect_timeout: float = 5.0,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        if not 0 < heartbeat_interval < dead_after:
            raise ValueError("need 0 < heartbeat_interval < dead_after")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.interfaces = None if interfaces is None else list(interfaces)
        self.port = port
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self.connect_timeout = connect_timeout
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame

    def connect(self, *, peer_id: PeerId, name: str, room: str, secret: str | None) -> LanEndpoint:
        """Join ``room`` as ``peer_id`` (``async with``); leaving says goodbye and closes every link."""
        return LanEndpoint(self, peer_id=peer_id, name=name, room=room, secret=secret)


class _PeerLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['peer'] if self.extra else '?'}] {msg}", kwargs


class LanEndpoint:
    """One peer's presence in a room on the LAN (see :class:`LanTransport`)."""

    def __init__(self, transport: LanTransport, *, peer_id: PeerId, name: str, room: str, secret: str | None) -> None:
        self.id = peer_id
        self.name = name
        self.room = room
        self._t = transport
        self._secret = secret
        self._log = _PeerLog(log, {"peer": peer_id})
        self.incarnation = time.time_ns()
        self.auth_failures: list[AuthenticationFailed] = []
        """Authentication failures seen so far (peers refused, or that refused us)."""
        self.signaling_port = 0
        self.interfaces: list[str] = []
        self._key = b""
        self._links: dict[PeerId, Link] = {}
        self._known: dict[PeerId, Announcement] = {}
        self._dialers: dict[PeerId, anyio.CancelScope] = {}
        self._left: dict[PeerId, int] = {}
        self._refused: dict[PeerId, int] = {}
        self._detector = FailureDetector(timeout=transport.dead_after)
        self._events_tx: MemoryObjectSendStream[TransportEvent]
        self._events_rx: MemoryObjectReceiveStream[TransportEvent]
        self._events_tx, self._events_rx = anyio.create_memory_object_stream[TransportEvent](65536)
        self._inbox_bytes = 0
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self._discovery: Discovery | None = None
        self._reannouncing = False
        self._closing = False
        self._handshakes = 0

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
        if peer in self._links:
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
        self._key = await anyio.to_thread.run_sync(derive_key, self.room, self._secret)
        listener = await self._listen()
        await self._stack.enter_async_context(listener)
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
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
                ),
            )
        )
        self._tg.start_soon(self._serve, listener)
        self._tg.start_soon(self._discovery_loop, self._discovery)
        self._tg.start_soon(self._heartbeat_loop)
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
            raise TransportError(f"cannot listen on {self.interfaces} port {port}: {exc!r}") from exc
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
        while True:
            now = anyio.current_time()
            if now >= next_beat:
                for link in list(self._links.values()):
                    if link.up and not link.dead:
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
            deadline = self._detector.deadline
            wake = next_beat if deadline is None else min(next_beat, deadline + 0.001)
            await anyio.sleep(max(0.0, wake - anyio.current_time()))

    async def _discovery_loop(self, discovery: Discovery) -> None:
        async for event in discovery.events:
            match event:
                case Announcement():
                    self._on_announcement(event)
                case PeerGone(peer=peer):
                    self._log.debug("%s withdrew its mDNS record", peer)
                    self._known.pop(peer, None)
                    dialer = self._dialers.get(peer)
                    if dialer is not None and peer not in self._links:
                        dialer.cancel()  # stop retrying; an open link ends by goodbye or heartbeat

    def _on_announcement(self, ann: Announcement) -> None:
        peer = ann.peer
        old = self._known.get(peer)
        if old is not None and ann.incarnation < old.incarnation:
            return  # a stale record of an older incarnation
        self._known[peer] = ann
        if old is None:
            self._log.debug("discovered %s", peer)
        link = self._links.get(peer)
        restarted = link is not None and link.incarnation < ann.incarnation
        if link is not None and restarted:
            self._log.info("%s restarted (incarnation %d): replacing its link", peer, ann.incarnation)
            link.drop("restarted")
        if not self.id < peer:
            # the lower id dials; we wait for it, and tell it at once that we are here
            if old is None and peer not in self._links:
                self._reannounce_soon()
            return
        dialer = self._dialers.get(peer)
        if dialer is not None and (restarted or old is None or old.incarnation != ann.incarnation):
            dialer.cancel()
            dialer = None
        if dialer is None and self._tg is not None:
            scope = anyio.CancelScope()
            self._dialers[peer] = scope
            self._tg.start_soon(self._dial_loop, peer, scope)

    def _reannounce_soon(self) -> None:
        if self._reannouncing or self._tg is None or self._discovery is None:
            return
        self._reannouncing = True
        self._tg.start_soon(self._reannounce, self._discovery)

    async def _reannounce(self, discovery: Discovery) -> None:
        await anyio.sleep(0.005)  # one announcement for newcomers that arrive together
        self._reannouncing = False
        await discovery.reannounce()

    # -- dialing (we are the lower id) ----------------------------------------------------

    async def _dial_loop(self, peer: PeerId, scope: anyio.CancelScope) -> None:
        backoff = 0.05
        try:
            with scope:
                while not self._closing:
                    ann = self._known.get(peer)
                    if ann is None or ann.incarnation in (self._left.get(peer), self._refused.get(peer)):
                        return
                    try:
                        session, incarnation = await self._dial_once(ann)
                    except AuthenticationFailed as exc:
                        self._log.warning("%s: %s; not retrying", peer, exc)
                        self.auth_failures.append(exc)
                        self._refused[peer] = ann.incarnation
                        return
                    except (ConnectError, RemoteProtocolError) as exc:
                        self._log.debug("dialing %s failed: %s; retry in %.2f s", peer, exc, backoff)
                        await anyio.sleep(backoff)
                        backoff = min(backoff * 2, 2.0)
                        continue
                    try:
                        await self._run_link(session, peer=peer, name=ann.name, incarnation=incarnation)
                    except ConnectError as exc:
                        self._log.debug("link to %s did not open: %s", peer, exc)
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
        finally:
            if self._dialers.get(peer) is scope:
                del self._dialers[peer]

    async def _dial_once(self, ann: Announcement) -> tuple[RtcSession, int]:
        session: RtcSession | None = None

        async def create_offer() -> str:
            nonlocal session
            session = RtcSession(addresses=self.interfaces)
            return await session.create_offer()

        hello = new_hello(sender=self.id, receiver=ann.peer, name=self.name, incarnation=self.incarnation)
        try:
            with anyio.fail_after(self._t.connect_timeout):
                stream = await self._connect_tcp(ann)
                async with stream:
                    result = await run_dialer(stream, key=self._key, hello=hello, create_offer=create_offer)
                assert session is not None
                await session.accept_answer(result.answer_sdp)
        except TimeoutError as exc:
            await self._close_session(session)
            raise ConnectError(f"signaling with {ann.peer} timed out") from exc
        except BaseException:
            await self._close_session(session)
            raise
        assert session is not None
        return session, result.incarnation

    async def _connect_tcp(self, ann: Announcement) -> ByteStream:
        errors: list[str] = []
        for address in ann.addresses:
            try:
                return await anyio.connect_tcp(address, ann.port)
            except OSError as exc:
                errors.append(f"{address}:{ann.port}: {exc.strerror or exc!r}")
        raise ConnectError(f"cannot reach {ann.peer}: {'; '.join(errors) or 'no address'}")

    # -- accepting (we are the higher id) -------------------------------------------------

    async def _handle_incoming(self, stream: SocketStream) -> None:
        if self._handshakes >= _MAX_HANDSHAKES or self._closing:
            await stream.aclose()
            return
        self._handshakes += 1
        session: RtcSession | None = None

        async def create_answer(hello: Hello, offer_sdp: str) -> str:
            nonlocal session
            session = RtcSession(addresses=self.interfaces)
            return await session.accept_offer(offer_sdp)

        try:
            with anyio.fail_after(self._t.connect_timeout):
                async with stream:
                    hello = await run_listener(
                        stream,
                        key=self._key,
                        me=self.id,
                        incarnation=self.incarnation,
                        create_answer=create_answer,
                    )
        except AuthenticationFailed as exc:
            self._log.warning("refused a dialer: %s", exc)
            self.auth_failures.append(exc)
            await self._close_session(session)
            return
        except (TimeoutError, ConnectError, RemoteProtocolError) as exc:
            self._log.info("refused a signaling connection: %s", exc)
            await self._close_session(session)
            return
        except Exception:
            self._log.warning("signaling connection failed", exc_info=True)
            await self._close_session(session)
            return
        finally:
            self._handshakes -= 1
        assert session is not None
        try:
            await self._run_link(session, peer=hello.sender, name=hello.name, incarnation=hello.incarnation)
        except ConnectError as exc:
            self._log.info("link from %s did not open: %s", hello.sender, exc)

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
            max_frame=self._t.max_frame,
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
                self._detector.heard(peer, anyio.current_time())
                link.up = True
                self._log.debug("link to %s open", peer)
                await self._emit(PeerUp(peer=peer, name=name))
                await link.run_writer()
        finally:
            link.dead = True
            if link.graceful:
                self._left[peer] = link.incarnation
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
