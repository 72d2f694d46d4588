"""The open links of one LAN endpoint and the events it hands the node (link lifecycle, I/O only).

Each link (:mod:`.link`) lives from channel-open to close inside :meth:`LinkSet.run_link`; what
it hears goes to :class:`~.meshcore.MeshCore` (liveness), what it receives to a bounded inbox.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import ChannelClosed, ConnectError
from ..ids import PeerId
from .base import Frame, PeerDown, PeerUp, TransportEvent
from .link import PeerLink
from .meshcore import MeshCore
from .webrtc import RtcSession

__all__ = ["INBOX_LIMIT", "LinkSet", "close_session"]

INBOX_LIMIT: Final = 256 * 1024 * 1024
"""Bytes of received frames the node has not taken yet; a link that overruns it is dropped."""


async def close_session(session: RtcSession | None) -> None:
    """Close ``session`` (if any), shielded and bounded."""
    if session is None:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(2):
        await session.close()


class LinkSet:
    """One link per peer at most, and the bounded stream of transport events for the node."""

    def __init__(
        self, core: MeshCore, *, max_frame: int, connect_timeout: float, log: logging.LoggerAdapter[logging.Logger]
    ) -> None:
        self._core = core
        self._max_frame = max_frame
        self._connect_timeout = connect_timeout
        self._log = log
        self._links: dict[PeerId, PeerLink] = {}
        self._events_tx: MemoryObjectSendStream[TransportEvent]
        self._events_rx: MemoryObjectReceiveStream[TransportEvent]
        self._events_tx, self._events_rx = anyio.create_memory_object_stream[TransportEvent](65536)
        self._inbox_bytes = 0

    @property
    def peers(self) -> frozenset[PeerId]:
        """Peers with an open link now."""
        return frozenset(peer for peer, link in self._links.items() if link.up and not link.dead)

    def get(self, peer: PeerId) -> PeerLink:
        """The open link to ``peer``; ChannelClosed if there is none."""
        link = self._links.get(peer)
        if link is None or link.dead or not link.up or self._core.closing:
            raise ChannelClosed(f"no link to {peer}")
        return link

    def live(self) -> list[PeerLink]:
        """Every link not dead (a link not heard yet too)."""
        return [link for link in self._links.values() if not link.dead]

    # -- events for the node ----------------------------------------------------------------

    async def receive(self) -> TransportEvent:
        """Wait for the next event; ``anyio.EndOfStream`` once closed."""
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

    async def emit(self, event: TransportEvent) -> None:
        """Queue ``event`` for the node (waiting only if its stream is full)."""
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

    def close(self) -> None:
        """Close the event stream (the node then sees ``anyio.EndOfStream``)."""
        self._events_tx.close()
        self._events_rx.close()

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
        self._core.heard(peer, anyio.current_time())

    # -- liveness ---------------------------------------------------------------------------

    def beat(self) -> None:
        """A heartbeat on every link not dead (a link not heard yet too: its peer waits to hear from us)."""
        for link in self.live():
            try:
                link.beat()
            except ChannelClosed:
                pass  # dropped: its owner reports it

    def drop_silent(self, peer: PeerId, dead_after: float) -> None:
        """Nothing heard from ``peer`` for ``dead_after``: drop its link."""
        silent = self._links.get(peer)
        if silent is not None and not silent.dead:
            self._log.warning("%s silent for over %.2f s: declared dead", peer, dead_after)
            silent.drop("silent")

    # -- one open link ----------------------------------------------------------------------

    async def run_link(self, session: RtcSession, *, peer: PeerId, name: str, incarnation: int) -> None:
        """Own one link from channel-open to close; ConnectError if it never opened."""
        link = PeerLink(
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
                    with anyio.fail_after(self._connect_timeout):
                        await session.wait_open()
                except TimeoutError as exc:
                    raise ConnectError(f"data channel to {peer} did not open in time") from exc
                old = self._links.get(peer)
                if old is not None:
                    old.drop("replaced")
                    await old.finished.wait()
                if self._core.closing:
                    return
                self._links[peer] = link
                self._core.link_opened(peer)
                self._log.debug("link to %s open; waiting to hear from it", peer)
                with contextlib.suppress(ChannelClosed):
                    link.beat()  # the heartbeat loop beats it too: the peer may be waiting for us
                try:
                    with anyio.fail_after(self._connect_timeout):
                        await link.heard_first.wait()
                except TimeoutError as exc:
                    raise ConnectError(f"link to {peer} opened but {peer} was never heard") from exc
                await link.run_writer()
        finally:
            link.dead = True
            current = self._links.get(peer) is link
            if current:
                del self._links[peer]
            self._core.link_closed(peer, incarnation=link.incarnation, graceful=link.graceful, current=current)
            with anyio.CancelScope(shield=True):
                await close_session(session)
                if link.up and not self._core.closing:
                    self._log.debug("link to %s closed (%s)", peer, link.reason or "ended")
                    with anyio.move_on_after(1):
                        await self.emit(PeerDown(peer=peer, graceful=link.graceful))
            link.finished.set()

    # -- leaving ----------------------------------------------------------------------------

    def say_goodbye(self) -> list[PeerLink]:
        """Send a goodbye on every open link; return the links to flush."""
        links = list(self._links.values())
        for link in links:
            if link.up and not link.dead:
                link.send_goodbye()
        return links

    @staticmethod
    async def flush(link: PeerLink) -> None:
        """Wait until everything queued for ``link`` left this process (or the link died)."""
        # aiortc signals no "fully drained" event: poll, bounded by the caller's timeout.
        while not link.dead and not link.idle:  # noqa: ASYNC110
            await anyio.sleep(0.005)
