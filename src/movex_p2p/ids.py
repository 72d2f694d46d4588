"""Identifier types shared by every ring (pure: no I/O)."""

from __future__ import annotations

from typing import NewType

__all__ = ["PeerId", "Rid", "Term"]

PeerId = NewType("PeerId", str)
"""A peer's id: derived from its identity's public key (``identity.peer_id_of``), proven in every handshake."""

Term = NewType("Term", int)
"""An election term; a higher term fences every older one."""

Rid = NewType("Rid", str)
"""A resource id, ``"type:id"``."""
