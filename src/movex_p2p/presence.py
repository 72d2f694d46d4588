"""Who is in the room: every peer introduces itself on every new link (pure).

A link says only that a peer proved the room secret. Right after a link opens, each side sends
one :class:`Introduce` over it: its display name, presence info, role (``"player"`` or
``"spectator"``) and the version of each resource type it has. The node turns introductions
into :class:`PeerInfo` members (``peer.members``, ``on_peer_joined``), tells the election which
peers are spectators, and compares type versions (two builds of a game never share a type).
A spectator writes nothing (:data:`SPECTATORS_ONLY_WATCH`), and presence info is bounded
(:data:`MAX_INFO` a peer, :data:`MAX_PRESENCE` a resource) so it never outgrows a frame.

Tags 1-29 of the wire belong to the node: 1 is :class:`Introduce` (append, never renumber).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from .ids import PeerId
from .resource.state import size_of
from .routes import Lane, Route

__all__ = [
    "LANES",
    "MAX_INFO",
    "MAX_NAME",
    "MAX_PRESENCE",
    "MAX_TYPES",
    "MESSAGES",
    "ROLES",
    "ROUTES",
    "SPECTATORS_ONLY_WATCH",
    "STEPPED_ASIDE",
    "Introduce",
    "NodeMessage",
    "PeerInfo",
    "Role",
    "RoomInfo",
    "info_error",
    "presence_error",
]

Role = Literal["player", "spectator"]
"""A player may become master, counts in votes and writes; a spectator only watches (it binds and reads)."""

ROLES: Final[tuple[Role, ...]] = get_args(Role)

MAX_NAME: Final = 200
"""The longest display name, in characters (it also travels in mDNS TXT records)."""

MAX_TYPES: Final = 1024
"""The most resource types one introduction may list."""

MAX_INFO: Final = 4096
"""The most bytes a peer's presence ``info`` (``Peer(info=...)``) may take, CBOR-encoded: checked where it is
made (a ValueError) and by every peer that receives it (dropped and reported). Keep pictures in a resource."""

MAX_PRESENCE: Final = 256 * 1024
"""The most bytes one resource's subscribers may take together (ids and infos, CBOR-encoded): a master refuses
a bind past it (``StateTooLarge``), so a snapshot is at most its state's ``max_bytes`` plus this, well inside
the frame limit's slack (``wire.DECODE_SLACK``, 1 MiB)."""

SPECTATORS_ONLY_WATCH: Final = "spectators only watch"
"""Why a spectator's dispatch, create or remove is refused (``mx.ActionRejected``), locally and by the master."""

STEPPED_ASIDE: Final = (
    "another process joined the room with this peer's identity and took its place: this one stepped aside "
    "(close it, or give each process its own identity file)"
)
"""Why a peer whose identity another process took over refuses its app's writes (``mx.ActionRejected``)."""

_MAX_TYPE_NAME: Final = 200
_MAX_VERSION: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Introduce:
    """Sent once on every new link: who this peer is, its role and the version of each of its types."""

    name: str
    info: dict[str, Any]
    role: Role
    types: dict[str, str]

    def __post_init__(self) -> None:
        error = info_error(self.info)
        if error is not None:
            raise ValueError(error)
        if len(self.name) > MAX_NAME:
            raise ValueError(f"a name of {len(self.name)} characters (at most {MAX_NAME})")
        if len(self.types) > MAX_TYPES:
            raise ValueError(f"{len(self.types)} resource types (at most {MAX_TYPES})")
        for name, version in self.types.items():
            if len(name) > _MAX_TYPE_NAME or len(version) > _MAX_VERSION:
                raise ValueError("a resource type name or version is too long")


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A member of the room: its id, display name, presence info and role (``"player"`` or ``"spectator"``)."""

    id: str
    name: str
    info: dict[str, Any] = field(default_factory=dict, hash=False)  # still hashable, as in 0.2
    role: Role = "player"


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room seen on the LAN (:func:`movex_p2p.browse_rooms`).

    ``room``, ``players`` (count), ``names`` (the players' names, sorted) and ``spectators``
    (count) come from every peer's mDNS record. The rest are hints its peers announce (what most
    of its players say), unsigned: anyone on the LAN can announce anything, a join still proves
    the secret. ``game`` (``Peer(game=...)``, None if none), ``version``
    (:func:`movex_p2p.room_version` of the peers' types: equal digests, same build),
    ``max_players`` (None if none), ``secret_required`` (a peer has a secret), ``started`` (the
    room holds at least one resource, as a peer's replicas show; announced within about half a
    second of a create) and ``info`` (``Peer(lobby_info=...)``, at most 512 bytes of JSON).
    """

    room: str
    players: int
    names: tuple[str, ...]
    spectators: int = 0
    game: str | None = None
    version: str = ""
    max_players: int | None = None
    secret_required: bool = False
    started: bool = False
    info: dict[str, Any] = field(default_factory=dict, hash=False)  # still hashable, as in 0.2


NodeMessage = Introduce
"""Peer <-> peer messages the NodeCore handles itself."""

ROUTES: Final[dict[type[NodeMessage], Route]] = {Introduce: Route.NODE}
"""Introductions are handled by the NodeCore itself."""

LANES: Final[dict[type[NodeMessage], Lane]] = {Introduce: Lane.RELIABLE}
"""An introduction is sent once per link: it must not be lost."""

MESSAGES: Final[dict[int, type[NodeMessage]]] = {1: Introduce}
"""Wire tags: append, never renumber."""


def info_error(info: Mapping[str, Any]) -> str | None:
    """Why ``info`` is not fit to be presence info (over :data:`MAX_INFO` bytes), or None."""
    size = size_of(info)
    if size <= MAX_INFO:
        return None
    return f"presence info of {size} bytes encoded, over MAX_INFO ({MAX_INFO}): keep large data in a resource"


def presence_error(subscribers: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why ``subscribers`` (peer id -> info) are not fit to travel (an info or the whole over its bound), or None."""
    total = 0
    for peer, info in subscribers.items():
        error = info_error(info)
        if error is not None:
            return f"{peer}'s {error}"
        total += len(peer) + size_of(info)
    if total > MAX_PRESENCE:
        return f"subscribers of {total} bytes, over MAX_PRESENCE ({MAX_PRESENCE})"
    return None


def members_of(peers: dict[PeerId, PeerInfo]) -> dict[str, PeerInfo]:
    """``peers`` keyed by plain str ids (what the app sees)."""
    return {str(peer): info for peer, info in peers.items()}
