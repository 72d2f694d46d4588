"""Pure leader election and failure detection: events in, effects out, no I/O.

See ``docs/election.md``. The node drives :class:`ElectionMachine` and executes its effects;
:mod:`movex_p2p.election.sim` is a virtual-time harness for tests and simulations.
"""

from __future__ import annotations

from .detector import FailureDetector
from .machine import (
    Broadcast,
    Effect,
    ElectionConfig,
    ElectionMachine,
    Handover,
    Input,
    Joining,
    LinksChanged,
    LogPosition,
    MasterKnown,
    PeerLeft,
    Policy,
    Received,
    Role,
    Roles,
    Send,
    Tick,
)
from .messages import MESSAGES, ElectionMessage

__all__ = [
    "MESSAGES",
    "Broadcast",
    "Effect",
    "ElectionConfig",
    "ElectionMachine",
    "ElectionMessage",
    "FailureDetector",
    "Handover",
    "Input",
    "Joining",
    "LinksChanged",
    "LogPosition",
    "MasterKnown",
    "PeerLeft",
    "Policy",
    "Received",
    "Role",
    "Roles",
    "Send",
    "Tick",
]
