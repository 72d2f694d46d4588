"""The seam between the node and a network: a Transport opens one Endpoint per peer.

An endpoint delivers whole frames (bytes) between peers of one room and reports links coming up
and going down. Each link has two lanes (:class:`~movex_p2p.routes.Lane`): ``send`` is reliable
and ordered; ``send_datagram`` is best effort (its frames may be lost or reordered) and never
waits behind ``send`` data. The node passes ``send_datagram`` frames of at most
:data:`MAX_DATAGRAM` bytes only; what a transport does with a larger one differs (see there).
Frames from either lane arrive as the same :class:`Frame` event. An endpoint knows nothing of
resources or elections; the node encodes and decodes frames with :mod:`movex_p2p.wire` and
picks each message's lane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from ..ids import PeerId

if TYPE_CHECKING:
    from ..identity import Identity

__all__ = [
    "MAX_DATAGRAM",
    "Endpoint",
    "EndpointStatus",
    "Frame",
    "IdentityInUse",
    "PeerDown",
    "PeerUp",
    "PeersSeen",
    "Transport",
    "TransportEvent",
]

MAX_DATAGRAM: Final = 1024
"""The largest frame, in bytes, that the node passes to ``send_datagram`` (a larger one goes through ``send``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerUp:
    """A link to ``peer`` opened (authenticated, ready for frames)."""

    peer: PeerId
    name: str = ""
    info: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDown:
    """The link to ``peer`` closed: it said goodbye (``graceful``) or was declared dead."""

    peer: PeerId
    graceful: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One frame from ``peer`` (reliable frames in the order that peer sent them; datagrams in any order)."""

    peer: PeerId
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PeersSeen:
    """Peers of the room found (over mDNS, or addresses being dialed) that have no link yet.

    Each is named by its id or, for an address nobody answered at yet, by ``"@host:port"``. A
    peer counts only while a link to it may still open (a few seconds after it was found).
    """

    peers: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityInUse:
    """Another process joined the room with this peer's own identity (the same key) while this one was in it.

    ``superseded``: that process took this one's links (it came later; the peers hold one link per
    id), so this one is out of the room; else this one took the links of a live process of the
    same identity. Both are told (``detail`` says what happened).
    """

    superseded: bool
    detail: str


TransportEvent = PeerUp | PeerDown | Frame | PeersSeen | IdentityInUse


class EndpointStatus(Protocol):
    """What an endpoint knows of its room now (a LAN endpoint's ``LanStatus`` tells more)."""

    @property
    def seen(self) -> tuple[PeerId, ...]:
        """Peers of the room found on the network, linked or not."""
        ...

    @property
    def linked(self) -> tuple[PeerId, ...]:
        """Peers with an open link."""
        ...

    @property
    def refused(self) -> tuple[tuple[str, int], ...]:
        """Handshakes that failed or were refused, counted by reason."""
        ...


class Endpoint(Protocol):
    """One peer's attachment to a room on some network."""

    @property
    def refused(self) -> Mapping[str, int]:
        """Handshakes that failed or were refused so far, by reason (``"wrong secret"``: the room secret)."""
        ...

    @property
    def auth_failures(self) -> Sequence[str]:
        """The latest handshakes that failed on the room secret, as short texts (a bounded window)."""
        ...

    @property
    def peers(self) -> frozenset[PeerId]:
        """Peers with an open link now."""
        ...

    def send(self, peer: PeerId, data: bytes) -> None:
        """Queue ``data`` for ``peer`` without blocking; raise ChannelClosed if there is no link."""
        ...

    def send_datagram(self, peer: PeerId, data: bytes) -> None:
        """Best effort: may be lost or reordered, never waits behind send() data; ChannelClosed if no link.

        Over :data:`MAX_DATAGRAM` bytes, the transports differ: LanTransport sends the frame on
        the reliable lane instead; the in-process networks raise LocalProtocolError. A LAN
        endpoint that receives a datagram over that size closes the link to its sender as
        malformed (never delivered).
        """
        ...

    async def receive(self) -> TransportEvent:
        """Wait for the next event; raise ``anyio.EndOfStream`` once the endpoint is closed."""
        ...

    def receive_nowait(self) -> TransportEvent:
        """The next event if one is ready now, else raise ``anyio.WouldBlock`` (never waits)."""
        ...

    def status(self) -> EndpointStatus:
        """What this endpoint knows of the room now."""
        ...

    def room_started(self, started: bool) -> None:
        """The room holds a resource now, or no longer (told on each change): a LAN endpoint's lobby hints say so."""
        ...


class Transport(Protocol):
    """A network that peers join: ``LocalNetwork``, ``FaultyNetwork``, ``LanTransport``."""

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
    ) -> AbstractAsyncContextManager[Endpoint]:
        """Join ``room`` as ``peer_id``; leaving the context says goodbye and closes every link.

        ``identity`` holds the key ``peer_id`` is derived from: a transport that authenticates
        peers proves it with that key (LanTransport needs it; the in-process networks trust ids).

        ``max_frame``: the largest frame the node will send or accept (its largest state plus
        room for the message around it); a transport that bounds frames must allow at least that.
        ``role``: what a discovery record says of the peer (a lobby counts players, not spectators);
        the node passes it only for a spectator.
        """
        ...
