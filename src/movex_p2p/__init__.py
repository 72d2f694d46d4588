"""movex_p2p: serverless multiplayer state sync for LAN games, with host migration.

Resources of a type, pure reducers, actions and checksummed state (Movex's model), kept in
sync peer-to-peer: one elected peer runs the master, the others predict and reconcile, and
when the master goes away another takes over without losing an action.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import testing as testing  # ``mx.testing.FaultyNetwork`` after ``import movex_p2p``
from .election.machine import ElectionConfig, Policy
from .errors import (
    ActionRejected,
    ActionStuck,
    AuthenticationFailed,
    IncompatibleType,
    InvalidState,
    MovexError,
    NotSynced,
    ProtocolError,
    ResourceNotFound,
    StateTooLarge,
    TransportError,
)
from .events import PeerEvent
from .identity import Identity
from .lobby import browse_rooms, room_version
from .node import Diagnostic, DispatchHandle, Peer, Resource, ResourceInfo
from .nodecore import MasterChanged, PeerJoined, PeerLeft, PeersChanged
from .presence import PeerInfo, RoomInfo
from .resource.effects import ResourceRemoved
from .resource.types import Action, ResourceType, TransformContext, Unrevealed
from .resource.values import Deadline, fair, master
from .roomcode import room_code
from .transport.memory import LocalNetwork

if TYPE_CHECKING:
    from .transport.lan import LanTransport

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "Action",
    "ActionRejected",
    "ActionStuck",
    "AuthenticationFailed",
    "Deadline",
    "Diagnostic",
    "DispatchHandle",
    "ElectionConfig",
    "Identity",
    "IncompatibleType",
    "InvalidState",
    "LanTransport",
    "LocalNetwork",
    "MasterChanged",
    "MovexError",
    "NotSynced",
    "Peer",
    "PeerEvent",
    "PeerInfo",
    "PeerJoined",
    "PeerLeft",
    "PeersChanged",
    "Policy",
    "ProtocolError",
    "Resource",
    "ResourceInfo",
    "ResourceNotFound",
    "ResourceRemoved",
    "ResourceType",
    "RoomInfo",
    "StateTooLarge",
    "TransformContext",
    "TransportError",
    "Unrevealed",
    "browse_rooms",
    "fair",
    "master",
    "room_code",
    "room_version",
]


def __getattr__(name: str) -> Any:
    # LanTransport imports aiortc (~0.3 s, PyAV included): load it only when asked for.
    if name == "LanTransport":
        from .transport.lan import LanTransport

        return LanTransport
    raise AttributeError(f"module 'movex_p2p' has no attribute {name!r}")
