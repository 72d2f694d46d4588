"""Where a peer listens for signaling, and the bounds on what peer exchange passes on (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..ids import PeerId

__all__ = ["MAX_ADDRESSES", "MAX_MEMBERS", "Contact"]

MAX_MEMBERS: Final = 32
"""Most contacts one side passes on in a handshake."""
MAX_ADDRESSES: Final = 8
"""Most addresses in one contact."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """Where a peer listens for signaling: its IPv4 addresses and TCP port."""

    peer: PeerId
    addresses: tuple[str, ...]
    port: int
