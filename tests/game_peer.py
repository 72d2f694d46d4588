"""A movex_p2p.Peer on the LAN stack for the presence, lobby and secret tests (tests/test_game_netns.py).

Never run this on a real network: the tests start it inside a private namespace. It reports JSON
lines on stdout (``t`` = time.monotonic(), one clock for every process of the machine) and obeys
JSON commands on stdin, one a line: ``{"cmd": "leave"}`` (reports ``leaving`` first),
``{"cmd": "members"}``, ``{"cmd": "increment"}`` (needs ``--create``).

Events: ``entering`` (just before ``Peer.__aenter__``), ``ready``, ``joined`` and ``left`` (presence
deltas), ``diagnostic``, ``error`` (``wait_ready`` raised), ``members``, ``left_room``. With
``--browse``: no peer at all; on ``{"cmd": "browse"}`` it runs ``mx.browse_rooms`` once and
reports ``rooms`` (and ``browse_started`` just before); on ``{"cmd": "poll"}`` it browses for
``--wait`` seconds again and again until room ``--room`` shows, and reports ``seen``;
``{"cmd": "browse", "game": G}`` lists only the rooms of game G.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import anyio

import movex_p2p as mx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or `python -m tests.game_peer`
from lan_peer import emit, stdin_lines
from resources import Counter


async def run_peer(args: argparse.Namespace) -> None:
    reader, pipe = await stdin_lines()
    try:
        identity = mx.Identity.load_or_create(args.identity) if args.identity else None
        peer = mx.Peer(
            room=args.room,
            types=[Counter],
            name=args.name,
            secret=args.secret,
            role=args.role,
            identity=identity,
            transport=mx.LanTransport([args.iface], port=args.port),
            game=args.game,
            max_players=args.max_players,
            lobby_info=json.loads(args.lobby_info) if args.lobby_info else None,
        )
        peer.on_peer_joined(lambda info: emit("joined", id=info.id, name=info.name, role=info.role))
        peer.on_peer_left(lambda info, reason: emit("left", id=info.id, name=info.name, reason=reason))
        peer.on_diagnostic(lambda d: emit("diagnostic", kind=d.kind, peer=d.peer, reason=d.reason))
        emit("entering")
        async with peer:
            try:
                with anyio.fail_after(args.ready_timeout):
                    await peer.wait_ready()
            except mx.AuthenticationFailed as exc:
                emit("error", type=type(exc).__name__, message=str(exc), cause=str(exc.__cause__ or ""))
            except TimeoutError:
                emit("error", type="TimeoutError", message="wait_ready timed out")
            else:
                emit("ready", id=peer.id, master=peer.master_id, is_master=peer.is_master)
            resource = None
            if args.create:
                resource = await peer.bind(await peer.create(Counter, {"count": 0}, id="c"))
            while line := await reader.readline():
                command = line.decode().strip()
                if '"leave"' in command:
                    emit("leaving")
                    break
                if '"members"' in command:
                    members = {k: dataclasses.asdict(v) for k, v in peer.members.items()}
                    emit("members", members=members, master=peer.master_id)
                if '"increment"' in command and resource is not None:
                    await resource.dispatch(mx.Action("increment"))
                    emit("incremented", count=resource.state["count"])
    finally:
        pipe.close()
    emit("left_room")


async def run_browse(args: argparse.Namespace) -> None:
    reader, pipe = await stdin_lines()
    try:
        emit("browser_ready")
        while line := await reader.readline():
            if b'"browse"' in line:
                emit("browse_started")
                started = time.monotonic()
                game = json.loads(line).get("game")
                rooms = await mx.browse_rooms(interfaces=[args.iface], wait=args.wait, game=game)
                emit("rooms", rooms=[dataclasses.asdict(r) for r in rooms], took=time.monotonic() - started)
            elif b'"poll"' in line:  # short browses, back to back, until room --room shows
                while True:
                    rooms = await mx.browse_rooms(interfaces=[args.iface], wait=args.wait)
                    if any(r.room == args.room for r in rooms):
                        emit("seen", rooms=[dataclasses.asdict(r) for r in rooms])
                        break
            elif b'"leave"' in line:
                break
    finally:
        pipe.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="p")
    parser.add_argument("--room", default="room")
    parser.add_argument("--secret", default=None)
    parser.add_argument("--role", choices=["player", "spectator"], default="player")
    parser.add_argument("--identity", default=None, help="a key file: the same one after a restart is the same peer")
    parser.add_argument("--iface", default="127.0.0.2")
    parser.add_argument("--port", type=int, default=0, help="a fixed signaling TCP port")
    parser.add_argument("--game", default=None, help="Peer(game=...)")
    parser.add_argument("--max-players", type=int, default=None, help="Peer(max_players=...)")
    parser.add_argument("--lobby-info", default=None, help="Peer(lobby_info=...), as JSON")
    parser.add_argument("--create", action="store_true", help="create and bind counter:c")
    parser.add_argument("--ready-timeout", type=float, default=20.0)
    parser.add_argument("--browse", action="store_true", help="only browse rooms, on command")
    parser.add_argument("--wait", type=float, default=1.0, help="browse: seconds browse_rooms listens")
    parser.add_argument("--log", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    anyio.run(run_browse if args.browse else run_peer, args, backend="asyncio")


if __name__ == "__main__":
    main()
