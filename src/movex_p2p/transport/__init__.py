"""Transports: the only ring that does I/O. Every transport implements :class:`Transport`."""

from __future__ import annotations

from .base import (
    MAX_DATAGRAM,
    Endpoint,
    Frame,
    IdentityInUse,
    PeerDown,
    PeersSeen,
    PeerUp,
    Transport,
    TransportEvent,
)

__all__ = [
    "MAX_DATAGRAM",
    "Endpoint",
    "Frame",
    "IdentityInUse",
    "PeerDown",
    "PeerUp",
    "PeersSeen",
    "Transport",
    "TransportEvent",
]
