"""A small multiplayer pygame game on ``movex_p2p.embed``: tokens on a shared board + a hidden pick.

Each player moves a token with the arrow keys. Every round each player also secretly picks
1, 2 or 3 (keys 1-3): the pick is a private action, everyone only sees "submitted" until all
players have picked (``can_reveal``); then the highest pick nobody else chose scores a point.

Play on your LAN (one window per machine; needs the ``pygame`` extra: ``pip install -e '.[pygame]'``)::

    python examples/pygame_game.py --room board --name alice
    python examples/pygame_game.py --lobby --name bob      # pick a room from those on the LAN

The lobby lists the rooms that answer on the LAN (``mx.browse_rooms``, refreshed every second
on a thread of its own, so the window never waits): press 1-9 to join one, N for a new room.

Without a window, two bot players in one process on an in-process network (what the tests run)::

    SDL_VIDEODRIVER=dummy python examples/pygame_game.py --headless --bot --local-pair --frames 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from typing import Any

import anyio

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame

import movex_p2p as mx
from movex_p2p.embed import EmbeddedPeer, EmbeddedResource, start_peer

WIDTH, HEIGHT, CELL = 16, 12, 40
COLORS = [(230, 80, 80), (80, 160, 230), (90, 200, 120), (230, 200, 70), (180, 110, 220), (240, 140, 60)]


def board(state: Any, action: mx.Action) -> Any:
    """The board's pure reducer."""
    match action:
        case mx.Action("join", str(name)):
            if name in state["tokens"]:
                return state
            n = len(state["tokens"])
            tokens = {**state["tokens"], name: [(3 + 5 * n) % WIDTH, HEIGHT // 2]}
            return {**state, "tokens": tokens, "scores": {**state["scores"], name: 0}}
        case mx.Action("move", {"name": str(name), "dx": int(dx), "dy": int(dy)}) if name in state["tokens"]:
            x, y = state["tokens"][name]
            pos = [min(WIDTH - 1, max(0, x + dx)), min(HEIGHT - 1, max(0, y + dy))]
            return {**state, "tokens": {**state["tokens"], name: pos}}
        case mx.Action("submit", str(name)) if name in state["tokens"]:  # public half of a pick
            return {**state, "submitted": {**state["submitted"], name: True}}
        case mx.Action("pick", {"name": str(name), "pick": int(pick)}) if 1 <= pick <= 3:  # private half
            return {**state, "picks": {**state["picks"], name: pick}}
        case mx.Action("next_round", int(round_)) if round_ == state["round"] and _all_picked(state):
            picks = state["picks"]
            unique = [p for p in picks.values() if list(picks.values()).count(p) == 1]
            scores = dict(state["scores"])
            if unique:
                winner = next(name for name, p in picks.items() if p == max(unique))
                scores[winner] = scores.get(winner, 0) + 1
            return {**state, "round": round_ + 1, "submitted": {}, "picks": {}, "scores": scores}
    return state


def _all_picked(state: Any) -> bool:
    return bool(state["tokens"]) and all(name in state["picks"] for name in state["tokens"])


def can_reveal(state: Any) -> bool:
    """Reveal the picks once every player submitted one."""
    return bool(state["tokens"]) and all(state["submitted"].get(name) for name in state["tokens"])


Board = mx.ResourceType(
    "board",
    board,
    initial={"tokens": {}, "scores": {}, "submitted": {}, "picks": {}, "round": 0},
    can_reveal=can_reveal,
)


class Player:
    """One player: its embedded peer, its bound board, and (optionally) a bot brain."""

    def __init__(self, peer: EmbeddedPeer, res: EmbeddedResource, *, bot: bool, seed: int) -> None:
        self.peer, self.res, self.name = peer, res, peer.name
        self.bot = random.Random(seed) if bot else None
        self.frame = 0
        self.peer.on_master_changed(lambda master, term: print(f"{self.name}: master is now {master}", flush=True))
        res.dispatch(mx.Action("join", self.name))

    def move(self, dx: int, dy: int) -> None:
        self.res.dispatch(mx.Action("move", {"name": self.name, "dx": dx, "dy": dy}))

    def pick(self, pick: int) -> None:
        state = self.res.state
        if self.name in state["tokens"] and not state["submitted"].get(self.name):
            self.res.dispatch_private(
                mx.Action("pick", {"name": self.name, "pick": pick}), mx.Action("submit", self.name)
            )

    def step(self) -> None:
        """Once per frame: deliver events here, play if a bot, advance a finished round."""
        self.frame += 1
        self.peer.poll_events()
        self.res.poll()
        state = self.res.state
        if self.bot is not None and self.frame % 3 == 0:
            self.move(*self.bot.choice([(1, 0), (-1, 0), (0, 1), (0, -1)]))
            self.pick(self.bot.randint(1, 3))
        if _all_picked(state):
            self.res.dispatch(mx.Action("next_round", state["round"]))


def draw(screen: pygame.Surface, font: Any, player: Player) -> None:
    state = player.res.state
    screen.fill((25, 25, 35))
    for x in range(WIDTH):
        for y in range(HEIGHT):
            pygame.draw.rect(screen, (40, 40, 55), (x * CELL, y * CELL, CELL - 1, CELL - 1))
    for i, (name, (x, y)) in enumerate(sorted(state["tokens"].items())):
        pygame.draw.circle(screen, COLORS[i % len(COLORS)], (x * CELL + CELL // 2, y * CELL + CELL // 2), CELL // 3)
        if font is not None:
            picked = "✓" if state["submitted"].get(name) else "…"
            label = f"{name} {state['scores'].get(name, 0)} {picked}"
            screen.blit(font.render(label, True, (230, 230, 230)), (x * CELL, y * CELL - 14))
    if font is not None:
        role = "master" if player.peer.is_master else "client"
        info = f"round {state['round']}  you: {player.name} ({role})  arrows: move  1-3: pick  v{player.res.version}"
        screen.blit(font.render(info, True, (200, 200, 120)), (6, HEIGHT * CELL + 6))


class Lobby:
    """The rooms on the LAN, browsed again and again on a thread of its own (the frame never waits)."""

    def __init__(self, interfaces: list[str] | None, every: float = 1.0) -> None:
        self.rooms: list[mx.RoomInfo] = []
        self.error: str | None = None
        self._interfaces = interfaces
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._browse, name="movex-lobby", daemon=True)

    def __enter__(self) -> Lobby:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _browse(self) -> None:
        while not self._stop.is_set():
            try:
                self.rooms = anyio.run(mx.browse_rooms, self._interfaces, self._every)  # a new list: a safe swap
            except mx.TransportError as exc:
                self.error = str(exc)
                self._stop.wait(self._every)


def lobby(args: argparse.Namespace, screen: pygame.Surface, font: Any) -> str | None:
    """Show the rooms on the LAN until one is picked (1-9), a new one is made (N) or the window closes."""
    clock = pygame.time.Clock()
    started = time.monotonic()
    with Lobby([args.interface] if args.interface else None) as rooms:
        while True:
            listed = rooms.rooms[:9]
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE):
                    return None
                if event.type == pygame.KEYDOWN and pygame.K_1 <= event.key <= pygame.K_9:
                    index = event.key - pygame.K_1
                    if index < len(listed):
                        return _joining(listed, listed[index].room)
                if event.type == pygame.KEYDOWN and event.key == pygame.K_n:
                    return _joining(listed, args.room)
            if args.bot and listed:  # a bot joins the first room it sees
                return _joining(listed, listed[0].room)
            if args.bot and time.monotonic() - started > args.lobby_wait:
                return _joining(listed, args.room)
            screen.fill((25, 25, 35))
            lines = ["Rooms on your LAN (1-9: join, N: new room, Esc: quit)"]
            lines += [f"{i}) {r.room}: {r.players} playing ({', '.join(r.names)})" for i, r in enumerate(listed, 1)]
            if not listed:
                lines.append(rooms.error or "looking...")
            if font is not None:
                for i, line in enumerate(lines):
                    screen.blit(font.render(line, True, (220, 220, 220)), (20, 20 + 24 * i))
            pygame.display.flip()
            clock.tick(args.fps)


def _joining(listed: list[mx.RoomInfo], room: str) -> str:
    print(json.dumps({"lobby": [[r.room, r.players, list(r.names)] for r in listed], "joining": room}), flush=True)
    return room


def run(args: argparse.Namespace) -> int:
    pygame.init()
    try:
        screen = pygame.display.set_mode((WIDTH * CELL, HEIGHT * CELL + 30))
        pygame.display.set_caption("movex_p2p board")
        font = pygame.font.Font(None, 18) if pygame.font.get_init() else None
        if args.local_pair:
            return run_local_pair(args, screen, font)
        if args.lobby:
            room = lobby(args, screen, font)
            if room is None:
                return 0
            args.room = room
        return run_lan(args, screen, font)
    finally:
        pygame.quit()


def run_local_pair(args: argparse.Namespace, screen: pygame.Surface, font: Any) -> int:
    """Two players in this process on one in-process network; print whether they agree."""
    network = mx.LocalNetwork()
    with (
        start_peer(room="board", types=[Board], name="alice", transport=network, seed=1) as a,
        start_peer(room="board", types=[Board], name="bob", transport=network, seed=2) as b,
    ):
        players = [
            Player(peer, peer.bind(peer.create(Board, id="main")), bot=args.bot, seed=i)
            for i, peer in enumerate((a, b))
        ]
        clock = pygame.time.Clock()
        for _ in range(args.frames):
            pygame.event.pump()
            for player in players:
                player.step()
            draw(screen, font, players[0])
            pygame.display.flip()
            clock.tick(args.fps)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # let the last actions settle
            time.sleep(0.05)
            ra, rb = players[0].res, players[1].res
            if ra.pending == 0 and rb.pending == 0 and ra.checksum == rb.checksum and ra.state == rb.state:
                break
        ra, rb = players[0].res, players[1].res
        summary = {
            "agree": ra.checksum == rb.checksum and ra.state["tokens"] == rb.state["tokens"],
            "checksums": [ra.checksum, rb.checksum],
            "tokens": [_plain(ra.state["tokens"]), _plain(rb.state["tokens"])],
            "round": ra.state["round"],
            "scores": _plain(ra.state["scores"]),
            "version": ra.version,
        }
    print(json.dumps(summary), flush=True)
    return 0 if summary["agree"] else 1


def run_lan(args: argparse.Namespace, screen: pygame.Surface, font: Any) -> int:
    """One player on the LAN (or in a network namespace with --interface 127.0.0.2)."""
    transport = mx.LanTransport(interfaces=[args.interface] if args.interface else None)
    with start_peer(room=args.room, types=[Board], name=args.name, secret=args.secret, transport=transport) as peer:
        peer.on_peer_joined(lambda info: print(f"{info.name} joined", flush=True))
        peer.on_peer_left(lambda info, reason: print(f"{info.name} {reason}", flush=True))
        peer.on_diagnostic(lambda d: print(f"{d.kind}: {d.reason}", flush=True))
        player = Player(peer, peer.bind(peer.create(Board, id="main")), bot=args.bot, seed=hash(peer.id))
        clock = pygame.time.Clock()
        frame = 0
        while args.frames <= 0 or frame < args.frames:
            frame += 1
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    return 0
                if event.type == pygame.KEYDOWN:
                    keys = {pygame.K_LEFT: (-1, 0), pygame.K_RIGHT: (1, 0), pygame.K_UP: (0, -1), pygame.K_DOWN: (0, 1)}
                    if event.key in keys:
                        player.move(*keys[event.key])
                    elif event.key in (pygame.K_1, pygame.K_2, pygame.K_3):
                        player.pick(event.key - pygame.K_0)
                    elif event.key == pygame.K_ESCAPE:
                        return 0
            player.step()
            draw(screen, font, player)
            pygame.display.flip()
            clock.tick(args.fps)
        summary = {
            "room": args.room,
            "checksum": player.res.checksum,
            "tokens": _plain(player.res.state["tokens"]),
            "members": sorted(info.name for info in peer.members.values()),
        }
        print(json.dumps(summary), flush=True)
    return 0


def _plain(value: Any) -> Any:
    """Frozen state -> plain dicts and lists (for JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A small multiplayer board game on movex_p2p.embed.")
    parser.add_argument("--room", default="board", help="room name (LAN mode)")
    parser.add_argument("--name", default=None, help="your name (LAN mode)")
    parser.add_argument("--secret", default=None, help="room secret (LAN mode)")
    parser.add_argument("--interface", default=None, metavar="ADDR", help="IPv4 address to use (LAN mode)")
    parser.add_argument("--bot", action="store_true", help="a scripted bot plays instead of the keyboard")
    parser.add_argument("--headless", action="store_true", help="no window (sets SDL_VIDEODRIVER=dummy)")
    parser.add_argument("--frames", type=int, default=0, help="stop after N frames (0: until closed)")
    parser.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    parser.add_argument("--local-pair", action="store_true", help="two players in this process, no network")
    parser.add_argument("--lobby", action="store_true", help="first pick a room among those on the LAN")
    parser.add_argument(
        "--lobby-wait", type=float, default=3.0, help="--lobby --bot: make --room after this long with no room"
    )
    args = parser.parse_args(argv)
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if args.local_pair and args.frames <= 0:
        args.frames = 300
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
