"""The one scriptable peer program of the tests, the benchmarks and the ``movex-p2p demo``.

    python -m movex_p2p.testing.peer ROLE [options]

Never run it on a real network: the process beds (:mod:`movex_p2p.testing.netns`,
:mod:`movex_p2p.testing.multihost`) start it inside private network namespaces. One protocol
for every role: commands are JSON objects on stdin, one a line, ``{"cmd": NAME, ...fields}``;
events are JSON objects on stdout, one a line, ``{"ev": NAME, "t": time.monotonic(), ...}``
(one clock for every process of the machine). An unknown command is reported as ``unknown``.
Every role that runs until told ends on ``{"cmd": "leave"}`` or the end of stdin, with ``left``.

Roles:

- ``peer``: a :class:`movex_p2p.Peer` over the LAN transport (types: counter, tally, blob).
  Events: ``entering`` (just before ``Peer.__aenter__``), ``entered``, ``master``, ``peers``,
  ``mesh`` (``--expect`` others linked), ``joined``/``parted`` (presence), ``diagnostic``,
  ``room`` (``wait_ready`` returned) or ``error`` (it failed), ``blobs``, ``ready`` (resources
  made); ``--counter``/``--tally`` create
  and bind ``counter:c``/``tally:t``. Commands: ``members``; on the counter ``increment``
  (``n`` times, default 1: ``incremented``), ``await_count`` (``count``: ``synced``); on the
  tally ``rtt`` (``n``), ``flood`` (``count``, ``window``, ``total``), ``go`` / ``stop`` (steady
  dispatching every ``--interval`` s: ``stopped``; ``go`` again plays on), ``burst`` (``n`` then ``more``:
  ``burst_sent``, ``burst_settled``), ``report`` (``final`` after ``--settle`` s, or the command's
  ``settle``); ``rss``; ``leave`` (``leaving``); ``route`` (with ``--trace-route`` or ``--trace-draws``: the
  marks of :mod:`~movex_p2p.testing.route` since the last ``route``).
  ``--fair`` creates and binds ``dice:d`` and the sealed ``cup:c``: ``fair`` (``n``, ``warmup``:
  one die at a time, ``mx.master`` and ``mx.fair`` draws alternating: ``fair``) and
  ``private_draws`` (the same with sealed pairs, plain dice and private draws alternating:
  ``private_draws``), each with the dispatch -> confirmed times in ms and ``late`` (rolls whose
  author did not see its drawn value at its own confirmation); :mod:`~movex_p2p.testing.rolls`.
  ``--do JSON`` (repeatable) runs commands once ready, before reading stdin.
- ``demo``: a player of ``movex-p2p demo`` (its tally); ``status`` every 0.2 s; commands
  ``play``, ``pause``, ``stop``, ``leave``.
- ``link``: a LanEndpoint only (no Peer); ids are derived from names (:func:`identity_of`) and
  shown as names. Events ``ready``, ``up``, ``down``, ``frame``; commands ``send_all``
  (``data``), ``send`` (``peer``, ``data``), ``status``.
- ``offer``: report the candidate types of one WebRTC offer (``offer``) and exit.
- ``browse``: no peer; ``browse`` (optional ``game``) runs ``browse_rooms`` once (``rooms``);
  ``poll`` browses until room ``--room`` shows (``seen``).
- Hostile roles (strangers and liars on the LAN): ``garbage`` (each kind of garbage to a
  signaling port: ``garbage`` per kind, ``done``), ``ghosts`` (a room member whose handshakes
  carry made-up members: ``ghosts``), ``idle`` (hold ``--count`` silent connections:
  ``holding`` on ``report``), ``announce`` (made-up mDNS members: ``announced``), ``fail``
  (failed handshakes from rotating sources: ``failed``), ``mdns-flood`` (``--count`` made-up
  members multicast over mDNS from ``--iface``, ``--rate`` a second: ``flooding``, ``flooded``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketStream, TaskGroup

import movex_p2p as mx

from ..identity import Identity
from ..ids import PeerId
from . import route
from .rolls import Alternated, alternate, private_roll, public_roll
from .types import Blob, Counter, Cup, Dice, Tally

__all__ = ["emit", "identity_of", "main"]

Command = dict[str, Any]


def emit(event: str, **fields: Any) -> None:
    """Write one event line on stdout."""
    sys.stdout.write(json.dumps({"ev": event, "t": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


async def commands() -> AsyncGenerator[Command]:
    """The commands read from stdin until it ends; a line that is no JSON object is reported and skipped."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            try:
                command = json.loads(line)
            except ValueError:
                command = None
            if isinstance(command, dict) and isinstance(command.get("cmd"), str):
                yield command
            else:
                emit("unknown", line=line.decode(errors="replace").strip())
    finally:
        pipe.close()


def rss_kib() -> int:
    """This process's resident memory (Linux), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def identity_of(name: str) -> Identity:
    """The test identity of the peer called ``name`` (the same in every process)."""
    return Identity(hashlib.sha256(b"movex-p2p/tests/" + name.encode()).digest())


# -- peer: a movex_p2p.Peer on the LAN ----------------------------------------------------------


class Driver:
    """The ``peer`` role: a Peer, its resources and the commands that act on them."""

    def __init__(self, peer: mx.Peer, args: argparse.Namespace) -> None:
        self.peer = peer
        self.args = args
        self.counter: mx.Resource | None = None
        self.tally: mx.Resource | None = None
        self.dice: mx.Resource | None = None
        self.cup: mx.Resource | None = None
        self.stats = {"dispatched": 0, "confirmed": 0, "rejected": 0, "stuck": 0}
        self.terms_seen: set[int] = set()
        self.going = anyio.Event()
        self.stopping = anyio.Event()
        self.heartbeat_gaps: list[float] = []

    def _tally(self) -> mx.Resource:
        if self.tally is None:
            raise SystemExit("this command needs --tally")
        return self.tally

    def _counter(self) -> mx.Resource:
        if self.counter is None:
            raise SystemExit("this command needs --counter")
        return self.counter

    async def start(self) -> bool:
        """Wait for the room, create the resources; False (``error`` reported) if wait_ready failed."""
        peer, args = self.peer, self.args
        try:
            with anyio.fail_after(args.ready_timeout):
                while len(peer.peers) < args.expect:  # noqa: ASYNC110 - a test program may poll
                    await anyio.sleep(0.02)
                await peer.wait_ready()
        except mx.AuthenticationFailed as exc:
            emit("error", type=type(exc).__name__, message=str(exc), cause=str(exc.__cause__ or ""))
            return False
        except TimeoutError:
            emit("error", type="TimeoutError", message="wait_ready timed out")
            return False
        emit("room", id=peer.id, master=peer.master_id, peers=sorted(peer.peers))
        if args.counter:
            self.counter = await peer.bind(await peer.create(Counter, {"count": 0}, id="c"))
        if args.tally:
            self.tally = await peer.bind(await peer.create(Tally, id="t"))
        if args.fair:
            self.dice = await peer.bind(await peer.create(Dice, id="d"))
            self.cup = await peer.bind(await peer.create(Cup, id="c"))
        for i in range(args.blobs):  # a room of ``blobs`` MB: 1 MB resources (states over one piece each)
            await peer.create(Blob, {"data": bytes([i % 256]) * 1_000_000}, id=f"b{i}")
        if args.expect_blobs:
            with anyio.fail_after(300):
                while sum(rid.startswith("blob:") for rid in peer.resources()) < args.expect_blobs:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            emit("blobs", gaps=self.heartbeat_gaps)
        emit("ready", id=peer.id, master=peer.master_id, term=peer.term, is_master=peer.is_master)
        return True

    def trace_heartbeats(self) -> None:
        """Record the gaps between election heartbeats from the master (an instrument for benchmarks/wifi.py)."""
        from ..election import machine as el
        from ..election.messages import Heartbeat

        election = self.peer._core.election
        step = election.step
        last: list[float] = []

        def traced(event: el.Input, now: float) -> list[el.Effect]:
            if isinstance(event, el.Received) and isinstance(event.message, Heartbeat):
                if last:
                    self.heartbeat_gaps.append(now - last[0])
                last[:] = [now]
            return step(event, now)

        election.step = traced  # type: ignore[method-assign]

    async def confirm(self, handle: mx.DispatchHandle) -> None:
        """Count how one tally dispatch settled."""
        stats = self.stats
        try:
            await handle
        except mx.ActionStuck:
            stats["stuck"] += 1
            stats["rejected"] += 1
            return
        except mx.MovexError as exc:
            stats["rejected"] += 1
            emit("rejected", error=f"{type(exc).__name__}: {exc}")
            return
        stats["confirmed"] += 1
        if self.peer.term not in self.terms_seen:
            self.terms_seen.add(self.peer.term)
            emit("term_confirm", term=self.peer.term, master=self.peer.master_id)

    async def steady(self, tg: TaskGroup) -> None:
        """After ``go``: one tally dispatch every ``--interval`` s until ``stop``; a later ``go`` plays on."""
        while True:
            await self.going.wait()
            while not self.stopping.is_set():
                self.stats["dispatched"] += 1
                tg.start_soon(self.confirm, self._tally().dispatch(mx.Action("inc", self.peer.id)))
                await anyio.sleep(self.args.interval)
            self.going = anyio.Event()  # stopped: until the next ``go``

    async def settle_burst(self, handles: list[mx.DispatchHandle]) -> None:
        async with anyio.create_task_group() as burst:
            for handle in handles:
                burst.start_soon(self.confirm, handle)
        emit("burst_settled", n=len(handles))

    async def execute(self, command: Command, tg: TaskGroup) -> bool:
        """Run one command; False once asked to leave."""
        peer, stats = self.peer, self.stats
        match command["cmd"]:
            case "leave":
                emit("leaving")
                self.stopping.set()
                return False
            case "members":
                members = {k: dataclasses.asdict(v) for k, v in peer.members.items()}
                master, is_master = peer.master_id, peer.is_master
                emit("members", members=members, master=master, is_master=is_master, peers=sorted(peer.peers))
            case "increment":
                counter = self._counter()
                for _ in range(int(command.get("n", 1))):
                    await counter.dispatch(mx.Action("increment"))
                emit("incremented", id=peer.id, count=counter.state["count"])
            case "await_count":
                counter = self._counter()
                with anyio.fail_after(20):
                    while counter.state["count"] < command["count"]:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                emit("synced", count=counter.state["count"], checksum=counter.checksum, master=peer.master_id)
            case "rtt":
                emit("rtt", samples=await rtt(self._tally(), peer.id, command["n"]), is_master=peer.is_master)
            case "route":  # the marks of --trace-route so far (then forgotten)
                emit("route", marks=route.MARKS[:], is_master=peer.is_master)
                route.MARKS.clear()
            case "flood":
                result = await flood(self._tally(), peer.id, command["count"], command["window"], command["total"])
                emit("flood", **result, stats=peer.stats, resyncs=peer.stats["resyncs"])
            case "rss":
                emit("rss", kib=rss_kib(), peers=len(peer.peers))
            case "fair" | "private_draws":
                if self.dice is None or self.cup is None:
                    raise SystemExit("this command needs --fair")
                dice, cup = self.dice, self.cup
                warmup = int(command.get("warmup", 20))
                if command["cmd"] == "fair":
                    timed = await alternate(command["n"], warmup, lambda _, d: public_roll(dice, d))
                else:
                    timed = await alternate(command["n"], warmup, lambda i, d: private_roll(cup, peer.id, i, d))
                emit(command["cmd"], **milliseconds(timed), is_master=peer.is_master)
            case "go":
                if self.stopping.is_set():  # it played and stopped: it plays again
                    self.stopping = anyio.Event()
                self.going.set()
            case "stop":  # stop dispatching; report once every own action settled
                self.stopping.set()
                with anyio.move_on_after(10):
                    while stats["confirmed"] + stats["rejected"] < stats["dispatched"]:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                emit("stopped", id=peer.id)
            case "burst":  # ``n`` dispatches at once, then ``more``: all in flight together
                tally = self._tally()
                handles = [tally.dispatch(mx.Action("inc", peer.id)) for _ in range(int(command["n"]))]
                handles += [tally.dispatch(mx.Action("inc", peer.id)) for _ in range(int(command["more"]))]
                stats["dispatched"] += len(handles)
                emit("burst_sent", n=len(handles))
                tg.start_soon(self.settle_burst, handles)
            case "report":  # once every peer stopped: the room is quiet (``settle``: the counts now, while playing)
                tally = self._tally()
                await anyio.sleep(float(command.get("settle", self.args.settle)))
                emit(
                    "final",
                    version=tally.version,
                    id=peer.id,
                    state=dict(tally.state),
                    checksum=tally.checksum,
                    master=peer.master_id,
                    term=peer.term,
                    resyncs=peer.stats["resyncs"],
                    **stats,
                )
            case _:
                emit("unknown", cmd=command["cmd"])
        return True


def milliseconds(timed: Alternated) -> dict[str, Any]:
    """Alternated rolls as event fields: the times in ms, ``late`` and how many rolls ran."""
    return {
        "plain": [t * 1000 for t in timed.plain],
        "drawn": [t * 1000 for t in timed.drawn],
        "late": timed.late,
        "rolls": timed.rolls,
    }


async def rtt(resource: mx.Resource, me: str, n: int) -> list[float]:
    """Dispatch ``n`` actions one at a time; the dispatch -> confirmed times in ms."""
    samples = []
    action = mx.Action("inc", me)
    for _ in range(n):
        route.mark("dispatch")
        started = time.perf_counter()
        await resource.dispatch(action)
        samples.append((time.perf_counter() - started) * 1000)
        route.mark("settled")
    return samples


async def flood(resource: mx.Resource, me: str, count: int, window: int, total: int) -> dict[str, Any]:
    """Dispatch ``count`` actions, ``window`` in flight; wait until ``total`` are confirmed."""
    action = mx.Action("inc", me)
    outstanding: deque[mx.DispatchHandle] = deque()
    rejected = 0
    sent = 0
    started = time.monotonic()
    while sent < count or outstanding:
        room = min(window - len(outstanding), count - sent)
        for _ in range(room):  # refill the window in one burst: the frames coalesce
            outstanding.append(resource.dispatch(action))
        sent += room
        try:
            await outstanding.popleft()
        except mx.MovexError:
            rejected += 1
        while outstanding and outstanding[0].done:  # collect everything already settled
            if outstanding.popleft().error is not None:
                rejected += 1
    own_done = time.monotonic()
    with anyio.move_on_after(30):
        while sum(resource.confirmed.values()) < total:  # noqa: ASYNC110 - a bench may poll
            await anyio.sleep(0.002)
    return {
        "started": started,
        "own_done": own_done,
        "all_done": time.monotonic(),
        "rejected": rejected,
        "confirmed_total": sum(resource.confirmed.values()),
        "mine": resource.confirmed.get(me, 0),
        "checksum": resource.checksum,
    }


async def run_peer(args: argparse.Namespace) -> None:
    if args.trace_route or args.trace_draws:
        route.install(messages=args.trace_draws)
    election = None
    if args.election_timeout is not None:  # an experiment: how much of the start is the first election
        timeout = args.election_timeout
        election = mx.ElectionConfig(election_timeout=timeout, heartbeat_interval=timeout / 3, lease=timeout)
    peer = mx.Peer(
        room=args.room,
        types=[Counter, Tally, Blob, Dice, Cup],
        name=args.name,
        secret=args.secret,
        role=args.role,
        seed=args.seed,
        identity=mx.Identity.load_or_create(args.identity) if args.identity else None,
        transport=mx.LanTransport([args.iface], port=args.port, peers=args.peer),
        game=args.game,
        max_players=args.max_players,
        lobby_info=json.loads(args.lobby_info) if args.lobby_info else None,
        election=election,
        _fake_signer=args.fake_signer,
    )
    player = Driver(peer, args)
    meshed = False

    def peers_changed(peers: frozenset[str]) -> None:
        nonlocal meshed
        emit("peers", peers=sorted(peers))
        if args.expect and len(peers) >= args.expect and not meshed:
            meshed = True
            emit("mesh")

    peer.on_peer_joined(lambda info: emit("joined", id=info.id, name=info.name, role=info.role))
    peer.on_peer_left(lambda info, reason: emit("parted", id=info.id, name=info.name, reason=reason))
    peer.on_diagnostic(lambda d: emit("diagnostic", kind=d.kind, peer=d.peer, reason=d.reason))
    peer.on_master_changed(lambda master, term: emit("master", master=master, term=term))
    peer.on_peers_changed(peers_changed)
    emit("entering", wall=time.time())
    async with peer, anyio.create_task_group() as tg:
        emit("entered", id=peer.id, wall=time.time())
        if args.trace_heartbeats:
            player.trace_heartbeats()
        ready = await player.start()
        if ready and player.tally is not None:
            tg.start_soon(player.steady, tg)
        staying = True
        for scripted in args.do if ready else []:  # the same commands, given on the command line
            staying = await player.execute(json.loads(scripted), tg)
            if not staying:
                break
        if staying:
            async with aclosing(commands()) as stream:
                async for command in stream:
                    if not await player.execute(command, tg):
                        break
        tg.cancel_scope.cancel()
    emit("left")


# -- demo: one player of ``movex-p2p demo`` -----------------------------------------------------


async def run_demo(args: argparse.Namespace) -> None:
    from .. import cli

    if not cli.only_loopback():
        raise SystemExit("refusing to run: this process is not in a private network namespace")
    transport = mx.LanTransport(interfaces=[cli.NS_ADDRESS])
    peer = mx.Peer(room=cli.DEMO_ROOM, types=[cli.Tally], name=args.name, seed=args.seed, transport=transport)
    player = cli.Player(peer)
    stop = anyio.Event()

    async def report() -> None:
        while True:
            emit("status", **player.status())
            await anyio.sleep(cli.REPORT_EVERY)

    async def obey() -> None:
        async with aclosing(commands()) as stream:
            async for command in stream:
                if command["cmd"] == "leave":
                    break
                player.command(command["cmd"])
        stop.set()

    async with peer, anyio.create_task_group() as tg:
        tg.start_soon(report)
        tg.start_soon(obey)
        await player.run(stop)
        tg.cancel_scope.cancel()
    emit("left")


# -- link: a LanEndpoint only -------------------------------------------------------------------

STOCK_SETUP = "MOVEX_BENCH_STOCK_SETUP"
"""Set to 1 in the environment: this peer's links are set up without the link-setup workarounds."""
NAMES: dict[str, str] = {identity_of(f"p{i}").id: f"p{i}" for i in range(100)}
"""Peer id -> test name, for every id the ``link`` role may print."""


def alias(peer: str) -> str:
    return NAMES.get(peer, peer)


def aliased(text: str) -> str:
    for peer, name in NAMES.items():
        if peer in text:
            text = text.replace(peer, name)
    return text


async def run_link(args: argparse.Namespace) -> None:
    from ..errors import ChannelClosed
    from ..transport.base import Frame, PeerDown, PeerUp
    from ..transport.lan import LanEndpoint, LanTransport

    async def pump_events(endpoint: LanEndpoint) -> None:
        while True:
            try:
                event = await endpoint.receive()
            except anyio.EndOfStream:
                return
            match event:
                case PeerUp(peer=peer, name=name):
                    NAMES.setdefault(peer, name)
                    emit("up", peer=alias(peer), name=name)
                case PeerDown(peer=peer, graceful=graceful):
                    emit("down", peer=alias(peer), graceful=graceful)
                case Frame(peer=peer, data=data):
                    emit("frame", peer=alias(peer), data=data.decode(errors="replace"))

    def execute(endpoint: LanEndpoint, command: Command) -> None:
        match command["cmd"]:
            case "send_all":
                for peer in sorted(endpoint.peers):
                    endpoint.send(peer, str(command["data"]).encode())
            case "send":
                try:
                    endpoint.send(identity_of(command["peer"]).id, str(command["data"]).encode())
                except ChannelClosed as exc:
                    emit("send_failed", peer=command["peer"], error=str(exc))
            case "status":
                lan = json.loads(aliased(json.dumps(dataclasses.asdict(endpoint.status()))))
                for field in ("seen", "learnt", "linked"):
                    lan[field] = sorted(lan[field])
                emit(
                    "status",
                    peers=sorted(alias(p) for p in endpoint.peers),
                    auth_failures=len(endpoint.auth_failures),
                    dialing=sorted(alias(p) for p in endpoint._dialers),  # peers with a dial loop (tests peek)
                    port=endpoint.signaling_port,
                    lan=lan,
                    rss_kib=rss_kib(),
                    cpu_s=time.process_time(),
                )
            case _:
                emit("unknown", cmd=command["cmd"])

    transport = LanTransport(
        [args.iface],
        port=args.port,
        peers=args.peer,
        heartbeat_interval=args.heartbeat,
        dead_after=args.dead_after,
        connect_timeout=5.0,
    )
    identity = identity_of(args.name)
    NAMES[identity.id] = args.name
    async with (
        transport.connect(
            peer_id=identity.id, name=args.name, room=args.room, secret=args.secret, identity=identity
        ) as endpoint,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(pump_events, endpoint)
        emit("ready", id=endpoint.id, port=endpoint.signaling_port, incarnation=endpoint.incarnation)
        async with aclosing(commands()) as stream:
            async for command in stream:
                if command["cmd"] == "leave":
                    break
                execute(endpoint, command)
        tg.cancel_scope.cancel()
    emit("left", auth_failures=len(endpoint.auth_failures))


async def run_offer(args: argparse.Namespace) -> None:
    from ..transport.webrtc import RtcSession, candidate_types

    session = RtcSession(addresses=[args.iface])
    try:
        sdp = await session.create_offer()
        emit("offer", candidates=candidate_types(sdp))
    finally:
        with anyio.CancelScope(shield=True):
            await session.close()


# -- browse: the lobby, without a peer ----------------------------------------------------------


async def run_browse(args: argparse.Namespace) -> None:
    emit("browser_ready")
    async with aclosing(commands()) as stream:
        async for command in stream:
            match command["cmd"]:
                case "browse":
                    emit("browse_started")
                    started = time.monotonic()
                    rooms = await mx.browse_rooms(interfaces=[args.iface], wait=args.wait, game=command.get("game"))
                    emit("rooms", rooms=[dataclasses.asdict(r) for r in rooms], took=time.monotonic() - started)
                case "poll":  # short browses, back to back, until room --room shows
                    while True:
                        rooms = await mx.browse_rooms(interfaces=[args.iface], wait=args.wait)
                        if any(r.room == args.room for r in rooms):
                            emit("seen", rooms=[dataclasses.asdict(r) for r in rooms])
                            break
                case "leave":
                    break
                case _:
                    emit("unknown", cmd=command["cmd"])
    emit("left")


# -- hostile roles: strangers and liars ---------------------------------------------------------

GARBAGE: list[bytes] = [
    b"\x00\x00\x00\x05{not json",  # a short, malformed message
    b"\xff\xff\xff\xff" + b"x" * 64,  # a length far over the limit
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # another protocol
    b'\x00\x00\x00\x0b{"t":"offer"}',  # a well-formed frame out of order
    b'\x00\x00\x00\x2a{"t":"hello","v":1,"from":1,"to":[]}' + b" " * 8,  # wrong types
    bytes(range(256)) * 4,  # noise
    b"",  # connect and hang up
]


async def run_garbage(args: argparse.Namespace) -> None:
    """Send each kind of garbage to a signaling port; report how each connection ended."""
    for payload in GARBAGE:
        outcome = "closed"
        try:
            async with await anyio.connect_tcp(args.host, args.port) as stream:
                if payload:
                    await stream.send(payload)
                with anyio.fail_after(10):
                    try:
                        while True:
                            await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                        pass
        except TimeoutError:
            outcome = "hung"
        except OSError as exc:
            outcome = f"error {exc!r}"
        emit("garbage", size=len(payload), outcome=outcome)
    emit("done")


async def run_ghosts(args: argparse.Namespace) -> None:
    """A room member (it knows the secret) that floods a peer with made-up members, handshake after handshake."""
    from ..errors import MovexError
    from ..transport.signaling import MAX_MEMBERS, Challenge, Contact, Exchange, derive_key, run_dialer

    key = derive_key(args.room, args.secret)
    outcomes: list[str] = []
    for round_ in range(args.count):
        ghosts = tuple(
            Contact(
                peer=PeerId(f"ghost{round_}-{i}"),
                addresses=("224.0.0.251", "127.0.0.1", *(f"10.66.{i}.{j}" for j in range(1, 7))),
                port=1 + i,
            )
            for i in range(MAX_MEMBERS)
        )
        identity = identity_of(f"hostile{round_}")

        async def create_offer(
            challenge: Challenge, identity: Identity = identity, ghosts: tuple[Contact, ...] = ghosts
        ) -> Exchange:
            me = Contact(peer=identity.id, addresses=(args.host,), port=9)
            return Exchange(sdp="v=0\r\n", me=me, members=ghosts)  # no usable SDP: no link, only the hints

        try:
            async with await anyio.connect_tcp(args.host, args.port) as stream:
                await run_dialer(
                    stream,
                    key=key,
                    identity=identity,
                    receiver=None,
                    name="hostile",
                    incarnation=1,
                    create_offer=create_offer,
                )
            outcomes.append("answered")
        except MovexError as exc:
            outcomes.append(type(exc).__name__)
    emit("ghosts", outcomes=outcomes)


def source(i: int) -> str:
    """The i-th made-up source address (every 127.x.y.z is the namespace's own loopback)."""
    return f"127.66.{i // 250}.{i % 250 + 1}"


async def run_idle(args: argparse.Namespace) -> None:
    """Hold ``--count`` silent connections to ``--port``, each from its own source; reopen closed ones."""
    held: dict[int, SocketStream] = {}

    async def hold(i: int) -> None:
        while True:
            try:
                stream = await anyio.connect_tcp(args.host, args.port, local_host=source(i))
            except OSError:
                await anyio.sleep(0.05)
                continue
            held[i] = stream
            try:
                while True:
                    await stream.receive()  # the listener says nothing to an idle stranger
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
            finally:
                del held[i]
                await stream.aclose()
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as tg:
        for i in range(args.count):
            tg.start_soon(hold, i)
        emit("ready")
        async with aclosing(commands()) as stream:
            async for command in stream:
                if command["cmd"] != "report":
                    break
                emit("holding", open=len(held))
        tg.cancel_scope.cancel()
    emit("left")


async def run_announce(args: argparse.Namespace) -> None:
    """Announce made-up members of ``--room`` over mDNS, pointing at a port that never answers."""
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    from ..transport.signaling import PROTOCOL_VERSION

    sink = socket.create_server((args.host, 0))  # accepts and never answers
    port = sink.getsockname()[1]
    ids = [args.copy] if args.copy else [Identity(os.urandom(32)).id for _ in range(args.count)]
    # each source address may bring 32 new members (transport/mdnsbudget.py): 20 from each of
    # 127.0.1.1, 127.0.1.2, ... (the namespace's loopback), never from the real peers' address
    sources = [f"127.0.1.{k + 1}" for k in range((len(ids) + 19) // 20)]
    zeroconfs = [AsyncZeroconf(interfaces=[source], ip_version=IPVersion.V4Only) for source in sources]
    try:
        announcements = []
        for i, peer in enumerate(ids):
            azc = zeroconfs[i // 20]
            info = AsyncServiceInfo(
                "_movex._tcp.local.",
                f"{peer}._movex._tcp.local.",
                port=port,
                properties={
                    "room": args.room,
                    "id": peer,
                    "v": str(PROTOCOL_VERSION),
                    "inc": str(time.time_ns() + 10**15),  # "newer" than any real incarnation
                    "sig": str(port),
                    "name": "fake",
                },
                server=f"{peer}-fake.local.",
                parsed_addresses=[args.host],
            )
            announcements.append(
                await azc.async_register_service(info, allow_name_change=True, cooperating_responders=True)
            )
        await asyncio.gather(*announcements)
        emit("announced", count=len(ids), port=port)
        async with aclosing(commands()) as stream:
            async for _ in stream:
                break
    finally:
        for azc in zeroconfs:
            await azc.async_close()
        sink.close()
    emit("left")


async def run_mdns_flood(args: argparse.Namespace) -> None:
    """Multicast ``--count`` mDNS responses from ``--iface``, ``--rate`` a second, each a made-up
    member of ``--room`` (PTR, SRV, TXT and A records, as a real announcement carries them)."""
    import base64

    from zeroconf import ServiceInfo
    from zeroconf._protocol.outgoing import DNSOutgoing

    from ..transport.discovery import SERVICE_TYPE
    from ..transport.signaling import PROTOCOL_VERSION

    response = 0x8400  # QR (a response) and AA, as every mDNS announcement
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.iface, 0))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(args.iface))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)

    def packet(i: int) -> bytes:
        peer = base64.b32encode(os.urandom(15)).decode().lower()[:20]  # shaped like a real peer id
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{peer}.{SERVICE_TYPE}",
            port=9 + i % 1000,
            properties={
                "room": args.room,
                "id": peer,
                "v": str(PROTOCOL_VERSION),
                "inc": str(time.time_ns()),
                "sig": str(9 + i % 1000),
                "name": "fake",
            },
            server=f"{peer}.local.",
            parsed_addresses=[f"10.66.{i // 250 % 250}.{i % 250 + 1}"],
        )
        out = DNSOutgoing(response)
        for record in (info.dns_pointer(), info.dns_service(), info.dns_text(), *info.dns_addresses()):
            out.add_answer_at_time(record, 0)
        return out.packets()[0]

    emit("flooding", count=args.count, rate=args.rate)
    started = time.monotonic()
    sent = failed = 0
    try:
        for i in range(args.count):
            ahead = started + i / args.rate - time.monotonic()
            if ahead > 0:
                await anyio.sleep(ahead)
            try:
                sock.sendto(packet(i), ("224.0.0.251", 5353))
                sent += 1
            except OSError:
                failed += 1
    finally:
        sock.close()
    emit("flooded", sent=sent, failed=failed, seconds=round(time.monotonic() - started, 3))
    async with aclosing(commands()) as stream:
        async for _ in stream:
            break
    emit("left")


async def run_fail(args: argparse.Namespace) -> None:
    """Run ``--count`` failed handshakes against ``--port``, from rotating sources (or all from ``--iface``)."""
    from ..transport.signaling import PROTOCOL_VERSION, Hello, Pake, derive_key, encode

    wrong = derive_key(args.room, "not the secret")
    me = Identity(os.urandom(32))
    outcomes: dict[str, int] = {}

    def hello(**changes: Any) -> bytes:
        fields: dict[str, Any] = {
            "version": PROTOCOL_VERSION,
            "sender": me.id,
            "receiver": "",
            "name": "stranger",
            "incarnation": 1,
            "nonce": os.urandom(16),
            "key": me.public_key,
            "pake": Pake(wrong).message,
        }
        return encode(Hello(**{**fields, **changes}))

    kinds = [
        b"\x00\x00\x00\x05{not",  # garbage
        hello()[:20],  # a Hello cut short
        hello(sender="made-up-id"),  # an id its key does not prove
        hello(pake=b"S" + bytes(32)),  # a PAKE message that is not a group element
    ]

    async def one(i: int) -> None:
        outcome = "closed"
        try:
            with anyio.fail_after(5):
                local = args.iface or source(i % 5000)
                async with await anyio.connect_tcp(args.host, args.port, local_host=local) as stream:
                    await stream.send(kinds[i % len(kinds)])
                    await stream.send_eof()
                    try:
                        while await stream.receive():
                            pass
                    except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                        pass
        except (OSError, TimeoutError) as exc:
            outcome = type(exc).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        await anyio.sleep(args.pace)

    async def worker(first: int) -> None:
        for i in range(first, args.count, args.parallel):
            await one(i)

    async with anyio.create_task_group() as tg:
        for first in range(min(args.parallel, args.count)):
            tg.start_soon(worker, first)
    emit("failed", outcomes=outcomes)


# -- the command line ---------------------------------------------------------------------------

RUNNERS: dict[str, Callable[[argparse.Namespace], Awaitable[None]]] = {
    "peer": run_peer,
    "demo": run_demo,
    "link": run_link,
    "offer": run_offer,
    "browse": run_browse,
    "garbage": run_garbage,
    "ghosts": run_ghosts,
    "idle": run_idle,
    "announce": run_announce,
    "fail": run_fail,
    "mdns-flood": run_mdns_flood,
}


def build_parser() -> argparse.ArgumentParser:
    """One parser; every role takes the options it uses (the beds append ``--iface`` to every command)."""
    parser = argparse.ArgumentParser(prog="python -m movex_p2p.testing.peer")
    roles = parser.add_subparsers(dest="mode", required=True)
    for role in RUNNERS:
        sub = roles.add_parser(role)
        source = "the source address (default: rotating 127.66.x.y)" if role == "fail" else "the address to use"
        sub.add_argument("--iface", default="" if role == "fail" else "127.0.0.2", help=source)
        sub.add_argument("--log", default="WARNING")
        sub.add_argument("--name", default="p0", help="the peer's name (link: also the seed of its identity)")
        sub.add_argument("--room", default="room")
        sub.add_argument("--secret", default=None)
        sub.add_argument("--port", type=int, default=0, help="peer, link: our signaling port; hostile: the target")
        sub.add_argument("--host", default="127.0.0.2", help="hostile: the address to attack")
        sub.add_argument("--count", type=int, default=100, help="hostile: connections, members or handshakes")
        if role in ("peer", "link"):
            sub.add_argument("--peer", action="append", default=[], help="HOST:PORT to dial (repeatable)")
        if role == "peer":
            sub.add_argument("--expect", type=int, default=0, help="other peers to wait for before ready")
            sub.add_argument("--seed", type=int, default=None)
            sub.add_argument("--role", choices=["player", "spectator"], default="player")
            sub.add_argument("--identity", default=None, help="a key file: the same one after a restart")
            sub.add_argument("--game", default=None)
            sub.add_argument("--max-players", type=int, default=None)
            sub.add_argument("--lobby-info", default=None, help="Peer(lobby_info=...), as JSON")
            sub.add_argument("--counter", action="store_true", help="create and bind counter:c")
            sub.add_argument("--tally", action="store_true", help="create and bind tally:t")
            sub.add_argument("--fair", action="store_true", help="create and bind dice:d and cup:c (sealed)")
            sub.add_argument("--blobs", type=int, default=0, help="create this many 1 MB resources before ready")
            sub.add_argument("--expect-blobs", type=int, default=0, help="report `blobs` once this many are here")
            sub.add_argument("--ready-timeout", type=float, default=30.0)
            sub.add_argument("--interval", type=float, default=0.01, help="seconds between steady dispatches")
            sub.add_argument("--settle", type=float, default=0.5, help="report: seconds to wait first")
            sub.add_argument("--election-timeout", type=float, default=None, help="an experiment")
            sub.add_argument(
                "--fake-signer",
                action="store_true",
                help="benchmark only: a keyed hash, not Ed25519",
            )
            sub.add_argument("--trace-heartbeats", action="store_true", help="report the heartbeat gaps")
            sub.add_argument("--trace-route", action="store_true", help="mark each hop of a dispatch (testing.route)")
            sub.add_argument("--trace-draws", action="store_true", help="--trace-route, and each message and frame")
            sub.add_argument("--profile", help="write cProfile stats of the whole run to this file")
            sub.add_argument("--do", action="append", default=[], help="a command (JSON) to run once ready")
        elif role == "demo":
            sub.add_argument("--seed", type=int, default=0)
        elif role == "link":
            sub.add_argument("--heartbeat", type=float, default=0.25)
            sub.add_argument("--dead-after", type=float, default=1.0)
        elif role == "browse":
            sub.add_argument("--wait", type=float, default=1.0, help="seconds browse_rooms listens")
        elif role == "announce":
            sub.add_argument("--copy", default="", help="announce this real peer's id instead")
        elif role == "mdns-flood":
            sub.add_argument("--rate", type=float, default=1000.0, help="responses a second")
        elif role == "fail":
            sub.add_argument("--pace", type=float, default=0.0, help="seconds between two handshakes")
            sub.add_argument("--parallel", type=int, default=1, help="handshakes at once")
    return parser


def main() -> None:
    """Run the role the command line names."""
    args = build_parser().parse_args()
    logging.basicConfig(level=args.log, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get(STOCK_SETUP) == "1":  # benchmarks/wifi.py --compare-setup: aiortc as shipped
        from ..transport.webrtc import RtcSession

        RtcSession.link_setup_fixes = False
    runner = RUNNERS[args.mode]
    profile = getattr(args, "profile", None)
    if not profile:
        anyio.run(runner, args, backend="asyncio")
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        anyio.run(runner, args, backend="asyncio")
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


if __name__ == "__main__":
    main()
