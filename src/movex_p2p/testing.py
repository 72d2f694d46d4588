"""Public test doubles: in-process networks with seeded faults (supported API)."""

from __future__ import annotations

from .transport.memory import FaultyNetwork, LocalNetwork

__all__ = ["FaultyNetwork", "LocalNetwork"]
