"""The lobby contract (API.md 0.3), without a network: RoomInfo, the hints a Peer announces, their
TXT encoding and parsing, how a room's peers are summed up, and ``movex-p2p rooms``' lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from zeroconf import ServiceInfo

import movex_p2p as mx
from movex_p2p.cli import build_parser, room_lines
from movex_p2p.ids import PeerId
from movex_p2p.lobby import MAX_INFO, Lobby, encode_info, lobby_txt, parse_lobby, rooms_of
from movex_p2p.transport.discovery import SERVICE_TYPE, Announcement, parse_txt, service_info

Counter = mx.ResourceType("counter", lambda s, a: s, initial={"n": 0}, version="1")
Dice = mx.ResourceType("dice", lambda s, a: s, initial={}, version="7")


def test_room_info_keeps_its_0_2_positional_fields_and_adds_hints_with_defaults() -> None:
    old = mx.RoomInfo("castle", 2, ("ann", "bob"), 1)
    assert (old.room, old.players, old.names, old.spectators) == ("castle", 2, ("ann", "bob"), 1)
    assert (old.game, old.version, old.max_players, old.secret_required, old.started, old.info) == (
        None,
        "",
        None,
        False,
        False,
        {},
    )
    hinted = mx.RoomInfo("castle", 2, ("ann", "bob"), 1, info={"map": [1, 2]})
    assert len({old, hinted, old}) == 2  # hashable, as in 0.2 (info, any JSON, is left out of the hash)


def test_room_version_is_a_short_digest_of_the_types_and_their_versions() -> None:
    version = mx.room_version([Counter, Dice])
    assert version == mx.room_version([Dice, Counter])  # the order types are listed in does not matter
    assert len(version) == 12
    other = mx.ResourceType("dice", lambda s, a: s, initial={}, version="8")
    assert mx.room_version([Counter, other]) != version
    assert mx.room_version([Counter]) != version


def test_lobby_info_is_json_of_at_most_512_bytes() -> None:
    assert encode_info({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'
    assert encode_info(None) == ""
    assert len(encode_info({"k": "x" * (MAX_INFO - 8)}).encode()) == MAX_INFO
    for bad in ({"k": "x" * (MAX_INFO - 7)}, {"k": "é" * 300}, {1: 2}, {"k": {1, 2}}, {"k": float("nan")}, [1]):
        with pytest.raises(ValueError):
            encode_info(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lobby_info": {"notes": "x" * 600}},
        {"lobby_info": {"when": object()}},
        {"game": ""},
        {"game": "a\nb"},
        {"game": "g" * 65},
        {"max_players": 0},
        {"max_players": True},
        {"max_players": 2.5},
    ],
)
def test_a_peer_refuses_unfit_lobby_hints_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        mx.Peer(room="r", types=[Counter], transport=mx.LocalNetwork(), **kwargs)


class _Told:
    """An in-process endpoint that also records what the driver tells it of the room's start."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.started: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def room_started(self, started: bool) -> None:
        self.started.append(started)
        self._inner.room_started(started)


class _Recording:
    """A transport that announces lobby hints: records what the Peer passes and tells, links nobody."""

    announces_lobby = True

    def __init__(self) -> None:
        self.connected: dict[str, Any] = {}
        self.endpoint: _Told | None = None

    @asynccontextmanager
    async def connect(self, **kwargs: Any) -> AsyncIterator[Any]:
        self.connected = kwargs
        network = mx.LocalNetwork()
        async with network.connect(**{k: v for k, v in kwargs.items() if k != "lobby"}) as endpoint:
            self.endpoint = _Told(endpoint)
            yield self.endpoint


async def test_a_peer_hands_its_hints_to_a_transport_that_announces_them() -> None:
    transport = _Recording()
    peer = mx.Peer(
        room="r",
        types=[Counter, Dice],
        secret="s",
        game="liars-dice",
        max_players=6,
        lobby_info={"mode": "classic"},
        transport=transport,
    )
    async with peer:
        await peer.wait_ready()
        assert transport.connected["lobby"] == Lobby(
            game="liars-dice",
            version=mx.room_version([Counter, Dice]),
            max_players=6,
            secret=True,
            info='{"mode":"classic"}',
        )
        told = transport.endpoint
        assert told is not None
        assert told.started == []  # no resource yet: nothing to tell
        await peer.create(Counter, id="c")
        assert told.started == [True]  # told once, by the step that created the room's first resource
        await peer.create(Dice, id="d")
        assert told.started == [True]  # only changes are told
        await peer.remove("counter:c")
        await peer.remove("dice:d")
        assert told.started == [True, False]  # the room holds no resource any more
    async with mx.Peer(room="r", types=[], transport=mx.LocalNetwork(), game="g") as plain:
        await plain.wait_ready()  # in-process networks take no hints (and need none)


def test_hints_survive_the_txt_record_and_each_entry_fits_in_255_bytes() -> None:
    lobby = Lobby(
        game="g" * 64,
        version="0123456789ab",
        max_players=10_000,
        secret=True,
        started=True,
        info=encode_info({"n": "é" * 250}),  # 2-byte characters cut across TXT entries
    )
    me = Announcement(
        peer=PeerId("p" * 20),
        name="n" * 200,
        room="r" * 200,
        version=3,
        incarnation=2**64 - 1,
        port=65535,
        addresses=("10.0.0.1",),
        lobby=lobby,
    )
    info = service_info(me)  # zeroconf packs the TXT here
    received = ServiceInfo(SERVICE_TYPE, info.name, properties=info.text)  # the TXT bytes, as received
    assert received.properties.get(b"i2") is not None  # 512 bytes of info took three entries
    assert parse_txt(received.properties, ["10.0.0.1"], 65535) == me
    for key, value in lobby_txt(lobby).items():
        assert isinstance(key, str)
        assert isinstance(value, bytes)
        assert len(f"{key}=".encode() + value) <= 255


def test_an_old_record_has_no_hints_and_hostile_hints_are_dropped_one_by_one() -> None:
    base = {b"room": b"r", b"id": b"p", b"v": b"3", b"inc": b"1", b"sig": b"5000"}
    assert parse_txt(base, [], 5000).lobby == Lobby()
    hostile = {
        **base,
        b"game": b"\xff\xfe",
        b"tv": b"ZZZ",
        b"max": b"99999999999999999999",
        b"sec": b"yes",
        b"st": b"1",
        b"i0": b"[" * 190,
        b"i1": b"]" * 190,
    }
    assert parse_txt(hostile, [], 5000).lobby == Lobby(started=True)  # the one well-formed hint is kept
    for info in ([b'{"a":', b"1}"], [b"[1, 2]"], [b"x" * 200, b"y" * 200, b"z" * 200], [b'"text"']):
        chunks = {f"i{i}".encode(): chunk for i, chunk in enumerate(info)}
        assert parse_lobby({**base, **chunks}).info == ("" if info != [b'{"a":', b"1}"] else '{"a":1}')
    assert parse_lobby({b"max": None, b"game": None, b"i0": None}) == Lobby()


def _member(peer: str, room: str, *, role: str = "player", protocol: int = 3, **hints: Any) -> Announcement:
    return Announcement(
        peer=PeerId(peer),
        name=peer,
        room=room,
        version=protocol,
        incarnation=1,
        port=5000,
        addresses=(),
        role=role,
        lobby=Lobby(**hints),
    )


def test_a_rooms_hints_are_what_most_of_its_players_announce() -> None:
    members = [
        _member("ann", "castle", game="dice", max_players=6, info='{"a":1}', version="aaaaaaaaaaaa"),
        _member("bob", "castle", game="dice", max_players=6, info='{"a":1}', version="aaaaaaaaaaaa", secret=True),
        _member("cy", "castle", game="poker", max_players=4, info='{"b":2}', version="bbbbbbbbbbbb"),
        _member("eye", "castle", role="spectator", game="chess", started=True),
        _member("zed", "dungeon"),
        _member("old", "attic", protocol=2, game="dice"),  # another protocol version: not listed
    ]
    castle, dungeon = rooms_of(members, version=3)
    assert castle == mx.RoomInfo(
        room="castle",
        players=3,
        names=("ann", "bob", "cy"),
        spectators=1,
        game="dice",
        version="aaaaaaaaaaaa",
        max_players=6,
        secret_required=True,  # any peer with a secret: the room has one
        started=True,  # any peer that holds a resource
        info={"a": 1},
    )
    assert dungeon == mx.RoomInfo("dungeon", 1, ("zed",))
    assert [r.room for r in rooms_of(members, version=3, game="dice")] == ["castle"]
    assert rooms_of(members, version=3, game="go") == []
    # a room of spectators only still shows their hints
    assert rooms_of([_member("eye", "hall", role="spectator", game="go")], version=3)[0].game == "go"


def test_rooms_lines_and_flags() -> None:
    rooms = [
        mx.RoomInfo("castle", 2, ("ann", "bob"), 1, game="dice", max_players=6, secret_required=True, info={"a": 1}),
        mx.RoomInfo("dungeon", 0, ()),
    ]
    assert room_lines(rooms) == [
        "castle: 2 player(s) (ann, bob), 1 watching",
        '  game dice, max 6 players, secret required, not started, info {"a": 1}',
        "dungeon: 0 player(s)",
        "  not started",
    ]
    args = build_parser().parse_args(["rooms", "--game", "dice", "--wait", "0.5", "--json", "--interface", "eth0"])
    assert (args.game, args.wait, args.json, args.interface) == ("dice", 0.5, True, ["eth0"])
    assert json.dumps([mx.RoomInfo("r", 1, ("a",)).__class__.__name__]) == '["RoomInfo"]'
