"""Where a wire message goes and how it travels, declared once per message type (pure).

Each messages module declares, next to its dataclasses, which :class:`Route` every message
takes at the receiver and on which :class:`Lane` it travels (``resource/messages.py``,
``election/messages.py``); :mod:`movex_p2p.wire` merges the tables and the node routes by them.
"""

from __future__ import annotations

import enum

__all__ = ["Lane", "Route"]


class Route(enum.Enum):
    """Which core handles a message where it arrives."""

    TO_MASTER = "to_master"
    """Client -> master: the MasterCore serves it, in arrival order (it waits while the master cannot serve)."""
    TO_CLIENTS = "to_clients"
    """Master -> clients: every peer's ClientCore applies it (fenced by term and sender)."""
    ELECTION = "election"
    """Peer <-> peer: the ElectionMachine."""
    NODE = "node"
    """Peer <-> peer: the NodeCore itself (introductions: who a peer is, its role, its type versions;
    witnesses: peers compare the seals their master sent them; proof of censorship: ``censorship.py``)."""


class Lane(enum.Enum):
    """How a message travels between two peers."""

    RELIABLE = "reliable"
    """``Endpoint.send``: ordered, never lost while the link is up."""
    DATAGRAM = "datagram"
    """``Endpoint.send_datagram``: may be lost or reordered, never waits behind reliable data.

    Only for small, idempotent messages whose loss the protocol tolerates (the election's).
    """
