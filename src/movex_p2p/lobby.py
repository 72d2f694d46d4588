"""``browse_rooms``: the rooms on the LAN, for a lobby screen, without joining any of them."""

from __future__ import annotations

from collections.abc import Sequence

from .presence import RoomInfo

__all__ = ["browse_rooms"]


async def browse_rooms(interfaces: Sequence[str] | None = None, wait: float = 1.0) -> list[RoomInfo]:
    """The rooms whose peers answer on the LAN within ``wait`` seconds, sorted by name.

    Listens to mDNS only: it announces nothing, joins no room and needs no secret (so it tells
    nothing about a room but its name, its players' names and how many watch). ``interfaces``
    as for ``mx.LanTransport`` (default: the machine's non-loopback IPv4 interfaces). A peer
    that was killed is not listed (it no longer answers); one running another protocol version
    is not either (it could not be joined).
    """
    from .transport.discovery import browse
    from .transport.interfaces import usable_interfaces
    from .transport.signaling import PROTOCOL_VERSION

    if wait < 0:
        raise ValueError("wait must not be negative")
    members = await browse(usable_interfaces(interfaces), wait=wait)
    rooms: dict[str, list[tuple[str, str]]] = {}
    for member in members:
        if member.version == PROTOCOL_VERSION:
            rooms.setdefault(member.room, []).append((member.role, member.name or str(member.peer)))
    return [
        RoomInfo(
            room=room,
            players=sum(role == "player" for role, _ in seen),
            names=tuple(sorted(name for role, name in seen if role == "player")),
            spectators=sum(role == "spectator" for role, _ in seen),
        )
        for room, seen in sorted(rooms.items())
    ]
