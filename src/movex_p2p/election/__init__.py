"""Pure leader election and failure detection: events in, effects out, no I/O.

See ``docs/election.md``. The node drives :class:`ElectionMachine` and executes its effects;
:mod:`movex_p2p.election.sim` is a virtual-time harness for tests and simulations.
"""

from __future__ import annotations

from .detector import FailureDetector
from .machine import (
    Disconnected,
    Effect,
    ElectionConfig,
    ElectionMachine,
    Handover,
    Input,
    Joining,
    LinksChanged,
    LogPosition,
    MasterChanged,
    Policy,
    Received,
    Roles,
    Send,
    Standing,
    Tick,
    ToOthers,
)
from .messages import MESSAGES, ElectionMessage

__all__ = [
    "MESSAGES",
    "Disconnected",
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
    "MasterChanged",
    "Policy",
    "Received",
    "Roles",
    "Send",
    "Standing",
    "Tick",
    "ToOthers",
]
