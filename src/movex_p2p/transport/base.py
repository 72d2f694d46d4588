"""The seam between the node and a network: a Transport opens one Endpoint per peer.

An endpoint delivers whole frames (bytes) between peers of one room over reliable, ordered
links (one per pair of peers) and reports links coming up and going down. It knows nothing of
resources or elections; the node encodes and decodes frames with :mod:`movex_p2p.wire`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from ..ids import PeerId

__all__ = ["Endpoint", "Frame", "PeerDown", "PeerUp", "Transport", "TransportEvent"]


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
    """One frame from ``peer``, in the order that peer sent it."""

    peer: PeerId
    data: bytes


TransportEvent = PeerUp | PeerDown | Frame


class Endpoint(Protocol):
    """One peer's attachment to a room on some network."""

    @property
    def peers(self) -> frozenset[PeerId]:
        """Peers with an open link now."""
        ...

    def send(self, peer: PeerId, data: bytes) -> None:
        """Queue ``data`` for ``peer`` without blocking; raise ChannelClosed if there is no link."""
        ...

    async def receive(self) -> TransportEvent:
        """Wait for the next event; raise ``anyio.EndOfStream`` once the endpoint is closed."""
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
    ) -> AbstractAsyncContextManager[Endpoint]:
        """Join ``room`` as ``peer_id``; leaving the context says goodbye and closes every link."""
        ...
