"""Public test doubles: in-process networks with seeded faults (supported API).

The submodules are the project's own harness, imported by its tests and benchmarks and never by
``import movex_p2p``: :mod:`~movex_p2p.testing.peer` (the one scriptable peer program),
:mod:`~movex_p2p.testing.netns` and :mod:`~movex_p2p.testing.multihost` (private Linux network
namespaces that run it), the ``*_bed`` scenarios, :mod:`~movex_p2p.testing.types` (their
resource types), :mod:`~movex_p2p.testing.cores` (the resource cores alone, routed by hand) and
:mod:`~movex_p2p.testing.pipes` (in-memory byte streams for the signaling handshake).
"""

from __future__ import annotations

from ..transport.memory import FaultyNetwork, LocalNetwork

__all__ = ["FaultyNetwork", "LocalNetwork"]
