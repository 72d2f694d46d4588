"""The lobby: the rooms on the LAN (``browse_rooms``), and the hints each peer announces for it.

Every peer's mDNS record (TXT) carries, besides its room, name and role, a few lobby hints
(:class:`Lobby`): the game it plays (``Peer(game=...)``), :func:`room_version` of its types,
its ``max_players``, whether it has a secret, whether the room has started (holds a resource)
and its ``lobby_info`` (JSON, at most :data:`MAX_INFO` bytes). Nobody signs them: anyone on
the LAN can announce anything, so a lobby shows them and a join still proves the room secret.
A malformed hint from someone else is dropped (:func:`parse_lobby` never raises), the rest of
the record still counts. This module is pure (no I/O); :func:`browse_rooms` imports the
transport when called.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .presence import RoomInfo

if TYPE_CHECKING:
    from .resource.types import ResourceType
    from .transport.discovery import Announcement

__all__ = [
    "MAX_GAME",
    "MAX_INFO",
    "MAX_PLAYERS",
    "Lobby",
    "browse_rooms",
    "check_game",
    "check_max_players",
    "encode_info",
    "lobby_txt",
    "parse_lobby",
    "room_version",
    "rooms_of",
]

MAX_INFO: Final = 512
"""Bytes of ``lobby_info`` once encoded (compact JSON, UTF-8)."""
MAX_GAME: Final = 64
"""Characters of a game name."""
MAX_PLAYERS: Final = 10_000
"""The largest ``max_players``."""
_CHUNK: Final = 200
"""Bytes of ``lobby_info`` per TXT entry (an entry holds at most 255 bytes, its key included)."""
_CHUNKS: Final = math.ceil(MAX_INFO / _CHUNK)
_VERSION_SIZE: Final = 12
_T = TypeVar("_T", str, int)


@dataclass(frozen=True, slots=True, kw_only=True)
class Lobby:
    """The lobby hints of one peer's record: what ``RoomInfo`` shows beyond names and counts."""

    game: str = ""
    """"" when none was announced."""
    version: str = ""
    """:func:`room_version` of the peer's types ("" when none was announced)."""
    max_players: int = 0
    """0 when none was announced."""
    secret: bool = False
    started: bool = False
    info: str = ""
    """Compact JSON of an object, at most :data:`MAX_INFO` bytes ("" when none)."""


def room_version(types: Iterable[ResourceType]) -> str:
    """A short digest of the names and versions of ``types`` (``RoomInfo.version``).

    Two peers with the same types at the same versions (the same build of a game) announce the
    same digest, so a lobby can hide the rooms it could not play in:
    ``[r for r in rooms if r.version == mx.room_version(MY_TYPES)]``.
    """
    pairs = sorted((t.name, t.version) for t in types)
    digest = hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()
    return digest[:_VERSION_SIZE]


def encode_info(info: Mapping[str, Any] | None) -> str:
    """``lobby_info`` as compact JSON; ValueError if it is not a JSON object or over :data:`MAX_INFO` bytes."""
    if info is None:
        return ""
    if not isinstance(info, Mapping) or not all(isinstance(k, str) for k in info):
        raise ValueError("lobby_info must be a dict with str keys")
    try:
        text = json.dumps(dict(info), separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lobby_info must be JSON data: {exc}") from None
    size = len(text.encode())
    if size > MAX_INFO:
        raise ValueError(f"lobby_info is {size} bytes encoded (at most {MAX_INFO}): it travels in mDNS records")
    return text


def check_game(game: str | None) -> str:
    """``Peer(game=...)`` checked: "" for None; ValueError if not a short printable str."""
    if game is None:
        return ""
    if not isinstance(game, str) or not game or len(game) > MAX_GAME or not game.isprintable():
        raise ValueError(f"game must be a non-empty printable str of at most {MAX_GAME} characters, not {game!r}")
    if len(game.encode()) > _CHUNK:
        raise ValueError(f"game must be at most {_CHUNK} bytes encoded (UTF-8)")
    return game


def check_max_players(max_players: int | None) -> int:
    """``Peer(max_players=...)`` checked: 0 for None; ValueError if not an int within 1..MAX_PLAYERS."""
    if max_players is None:
        return 0
    if isinstance(max_players, bool) or not isinstance(max_players, int) or not 1 <= max_players <= MAX_PLAYERS:
        raise ValueError(f"max_players must be an int within 1..{MAX_PLAYERS}, not {max_players!r}")
    return max_players


def lobby_txt(lobby: Lobby) -> dict[str | bytes, str | bytes | None]:
    """The TXT entries of ``lobby`` (only those announced): ``game``, ``tv``, ``max``, ``sec``, ``st``, ``i0``..."""
    txt: dict[str | bytes, str | bytes | None] = {}
    if lobby.game:
        txt["game"] = lobby.game.encode()
    if lobby.version:
        txt["tv"] = lobby.version.encode()
    if lobby.max_players:
        txt["max"] = str(lobby.max_players).encode()
    if lobby.secret:
        txt["sec"] = b"1"
    if lobby.started:
        txt["st"] = b"1"
    info = lobby.info.encode()
    for i in range(0, len(info), _CHUNK):
        txt[f"i{i // _CHUNK}"] = info[i : i + _CHUNK]
    return txt


def parse_lobby(properties: Mapping[bytes, bytes | None]) -> Lobby:
    """The lobby hints of a TXT record (pure); a malformed hint is left out, and nothing ever raises."""
    try:
        return Lobby(
            game=_hint(properties, _game, ""),
            version=_hint(properties, _version, ""),
            max_players=_hint(properties, _max_players, 0),
            secret=properties.get(b"sec") == b"1",
            started=properties.get(b"st") == b"1",
            info=_hint(properties, _info, ""),
        )
    except Exception:  # whatever a hostile record makes a check raise: no hints at all
        return Lobby()


def _hint(properties: Mapping[bytes, bytes | None], parse: Any, default: Any) -> Any:
    try:
        return parse(properties)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
        return default


def _game(properties: Mapping[bytes, bytes | None]) -> str:
    return check_game(_text(properties[b"game"]))


def _version(properties: Mapping[bytes, bytes | None]) -> str:
    version = _text(properties[b"tv"])
    if len(version) != _VERSION_SIZE or not all(c in "0123456789abcdef" for c in version):
        raise ValueError("not a room version")
    return version


def _max_players(properties: Mapping[bytes, bytes | None]) -> int:
    raw = _text(properties[b"max"])
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5):
        raise ValueError("not a decimal number")
    return check_max_players(int(raw))


def _info(properties: Mapping[bytes, bytes | None]) -> str:
    chunks = []
    for i in range(_CHUNKS):
        chunk = properties.get(f"i{i}".encode())
        if chunk is None:
            break
        chunks.append(chunk)
    if not chunks:
        return ""
    data = b"".join(chunks)
    if len(data) > MAX_INFO:
        raise ValueError("lobby info too long")
    info = json.loads(data.decode())
    if not isinstance(info, dict):
        raise ValueError("lobby info is not an object")
    return encode_info(info)


def _text(value: bytes | None) -> str:
    if value is None:
        raise ValueError("no value")
    return value.decode()


def rooms_of(members: Iterable[Announcement], *, version: int, game: str | None = None) -> list[RoomInfo]:
    """Group announcements into rooms, sorted by name (pure); only protocol ``version`` counts.

    Hints that peers of one room disagree on are settled by the players: the value most of
    them announce (a tie: the smallest); ``secret_required`` and ``started`` if any peer says so.
    """
    rooms: dict[str, list[Announcement]] = {}
    for member in members:
        if member.version == version:
            rooms.setdefault(member.room, []).append(member)
    found = []
    for room, seen in sorted(rooms.items()):
        players = [m for m in seen if m.role == "player"]
        hints = [m.lobby for m in players or seen]
        info = _most((h.info for h in hints), "")
        room_game = _most((h.game for h in hints), "") or None
        if game is not None and room_game != game:
            continue
        found.append(
            RoomInfo(
                room=room,
                players=len(players),
                names=tuple(sorted(m.name or str(m.peer) for m in players)),
                spectators=len(seen) - len(players),
                game=room_game,
                version=_most((h.version for h in hints), ""),
                max_players=_most((h.max_players for h in hints), 0) or None,
                secret_required=any(m.lobby.secret for m in seen),
                started=any(m.lobby.started for m in seen),
                info=json.loads(info) if info else {},
            )
        )
    return found


def _most(values: Iterable[_T], empty: _T) -> _T:
    """The value announced most often, ignoring empty ones (a tie: the smallest); ``empty`` if none."""
    counts = Counter(v for v in values if v)
    return min(counts, key=lambda v: (-counts[v], v)) if counts else empty


async def browse_rooms(
    interfaces: Sequence[str] | None = None, wait: float = 1.0, *, game: str | None = None
) -> list[RoomInfo]:
    """The rooms whose peers answer on the LAN within ``wait`` seconds, sorted by name.

    Listens to mDNS only: it announces nothing, joins no room and needs no secret. It always
    takes ``wait`` seconds (answers keep coming until then). ``interfaces`` as for
    ``mx.LanTransport`` (default: the machine's non-loopback IPv4 interfaces); ``game``: only
    the rooms announcing that game. A peer that was killed is not listed (it no longer
    answers); one running another protocol version is not either (it could not be joined).
    Everything but the room name and the counts is an unsigned hint (see :class:`RoomInfo`).
    """
    from .transport.discovery import browse
    from .transport.interfaces import usable_interfaces
    from .transport.signaling import PROTOCOL_VERSION

    if wait < 0:
        raise ValueError("wait must not be negative")
    members = await browse(usable_interfaces(interfaces), wait=wait)
    return rooms_of(members, version=PROTOCOL_VERSION, game=game)
