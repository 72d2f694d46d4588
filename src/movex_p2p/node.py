"""The node: ``Peer``, the app's handle on one peer of a room.

The core (:class:`~movex_p2p.nodecore.NodeCore`) is pure. A Peer owns the clock, the
randomness and the endpoint; one task, the :class:`~movex_p2p.driver.Driver`, steps the core on
the network's input and at its deadlines, and the app's commands step it in the caller's task
(a dispatch's frames leave at the end of that loop turn). Every Ready goes to the
:class:`~movex_p2p.notifier.Notifier`, which settles handles, notifies resources and publishes the
peer's one event stream (:meth:`Peer.events`; the ``on_*`` callbacks are adapters on it). All
core calls happen on the event loop's thread, so the core needs no locks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import anyio

from . import wire
from .censorship import POLICIES, Policy
from .driver import Driver
from .election import machine as el
from .errors import AuthenticationFailed, LocalProtocolError, NotSynced, ResourceNotFound, TransportError
from .events import Diagnostic, EventReader, PeerEvent
from .handles import DispatchHandle, Resource, ResourceInfo
from .identity import KEY_SIZE, Identity
from .ids import Rid
from .lobby import Lobby, check_game, check_max_players, encode_info, room_version
from .nodecore import NodeCore, Ready
from .notifier import REFUSALS, Notifier
from .presence import MAX_NAME, ROLES, PeerInfo, Role
from .resource import effects as fx
from .resource.client import STUCK_AFTER
from .resource.state import freeze
from .resource.types import DEFAULT_MAX_BYTES, Action, ResourceType, make_rid, parse_rid
from .signing import ED25519, FAKE, FakeSigner
from .transport.base import Endpoint, Transport

__all__ = ["Diagnostic", "DispatchHandle", "Peer", "PeerEvent", "Resource", "ResourceInfo"]

log = logging.getLogger(__name__)

_STATS: Final = ("events_in", "frames_out", "dropped", "faults", "resyncs", "rebased", "stuck", "lost")
"""The counters of :attr:`Peer.stats`."""
_JOIN_GRACE: Final = 2.5
"""Seconds ``wait_ready`` waits, once ready alone, for a link to members of the room it has seen (the
higher id of a pair dials after 1 s: then a wrong secret shows on both sides)."""


class Peer:
    """One peer of a room; ``async with Peer(...) as peer`` joins, leaving (:meth:`close`) hands the master over.

    Not thread-safe: use a Peer on the thread of the event loop it was entered on (its coroutines,
    ``dispatch``, its properties). A call from another thread raises ``RuntimeError`` rather than
    race with the network tasks; a synchronous game loop on its own thread uses
    ``movex_p2p.embed.start_peer`` instead, which runs the Peer on a thread of its own and is safe
    to call from any thread (``EmbeddedPeer.call`` runs a coroutine on that loop).

    ``role="spectator"``: never master, never counted in votes or quorum, never writes (``mx.ActionRejected``),
    still receives every update and every reveal. ``opaque=True`` (spectators only) also holds, read-only, the
    resources of types this peer does not have (``resource_info``), as ``movex-p2p inspect`` does.
    ``identity``: a persistent key pair (``mx.Identity.load_or_create(path)``); ``peer.id`` derives
    from it, so a restarted peer is the same peer (same author, its held private actions its own).
    ``stuck_after``: seconds an own action may wait unconfirmed while a master is known (counted across
    master changes); then it is
    proposed again, and after as long again its handle raises :class:`ActionStuck` (diagnostic
    ``stuck``). It stays pending: nothing is lost, and the state shows it if it goes through later.
    ``on_censored``: what this peer does when the master leaves another player's action it handed over
    unconfirmed for ``stuck_after`` seconds while confirming others' (diagnostic ``censored``,
    docs/election.md): ``"distrust"`` (stop following it, vote for another) or only ``"report"``.
    """

    def __init__(
        self,
        *,
        room: str,
        types: Sequence[ResourceType],
        name: str | None = None,
        info: dict[str, Any] | None = None,
        secret: str | None = None,
        transport: Transport | None = None,
        election: el.ElectionConfig | None = None,
        seed: int | None = None,
        handover_timeout: float = 1.0,
        identity: Identity | None = None,
        role: Role = "player",
        opaque: bool = False,
        stuck_after: float = STUCK_AFTER,
        on_censored: Policy = "distrust",
        game: str | None = None,
        max_players: int | None = None,
        lobby_info: dict[str, Any] | None = None,
        _fake_signer: bool = False,
    ) -> None:
        _check_arguments(room, types, name, role, opaque, stuck_after)
        if on_censored not in POLICIES:
            raise ValueError(f"on_censored must be one of {POLICIES}, not {on_censored!r}")
        # lobby hints (RoomInfo), announced over mDNS, unsigned; ValueError now if one is unfit
        self._lobby = Lobby(
            game=check_game(game),
            version=room_version(types),
            max_players=check_max_players(max_players),
            secret=bool(secret),
            info=encode_info(lobby_info),
        )
        rng = random.Random(seed)
        self.room = room
        self.role: Role = role
        self.name = name or f"peer-{rng.getrandbits(16):04x}"
        """Display name, shown to the others (``name=``, or ``peer-`` and 4 random hex digits); not unique."""
        if identity is None:  # a fresh one; reproducible from ``seed`` for tests and simulations
            identity = Identity(rng.randbytes(KEY_SIZE)) if seed is not None else Identity.generate()
        self.identity = identity
        self.id = identity.id
        """This peer's id, unique in the room and derived from its key (stable with ``identity=``)."""
        self.info = dict(info or {})
        freeze(self.info)  # InvalidState now, not at the first bind, if it is not JSON-like
        self._secret = secret
        types_by_name = {t.name: t for t in types}
        if len(types_by_name) != len(types):
            raise ValueError("two resource types share a name")
        if transport is None:
            from .transport.lan import LanTransport

            transport = LanTransport()
        self._transport = transport
        self._handover_timeout = handover_timeout
        self._rng = rng
        # a frame carries at most one state or action of the largest type, plus the message around it
        self._max_frame = max((t.max_bytes for t in types), default=DEFAULT_MAX_BYTES) + wire.DECODE_SLACK
        self._core = NodeCore(
            self.id,
            types=types_by_name,
            election=election or el.ElectionConfig(),
            rng=rng,
            decode_limit=self._max_frame,
            name=self.name,
            info=self.info,
            role=role,
            opaque=opaque,
            # _fake_signer: benchmarks only, to measure what Ed25519 costs (the protocol is the same)
            signer=FakeSigner(identity.public_key) if _fake_signer else identity,
            verifier=FAKE if _fake_signer else ED25519,
            entropy=os.urandom if seed is None else random.Random(f"{seed}:entropy").randbytes,  # seed: replayable
            room=room,
        )
        self._core.client.stuck_after = self._core.censor.grace = stuck_after
        self._core.censor.policy = on_censored
        self._driver: Driver | None = None  # while the transport is open
        self._runner: asyncio.Task[None] | None = None  # the peer's own task (see _run)
        self._stop = anyio.Event()  # set: the runner leaves
        self._stopped = anyio.Event()  # set by the runner when it is over
        self._closing: anyio.Event | None = None  # set once close() is done
        self._start_error: Exception | None = None  # the transport failed to open
        self._crash: Exception | None = None  # a task of the peer raised: close() raises it
        self._thread: int | None = None  # the event loop's thread (a Peer is not thread-safe)
        self._closed = False
        self._failure: BaseException | None = None
        self.log = logging.LoggerAdapter(log, {"peer": self.id})
        self.stats = dict.fromkeys(_STATS, 0)
        self._notifier = Notifier(log=self.log, stats=self.stats, master_id=lambda: self.master_id)
        self._resources = self._notifier.resources
        self._events = self._notifier.stream

    # -- properties ----------------------------------------------------------------------------

    @property
    def _endpoint(self) -> Endpoint | None:
        """The transport endpoint while the peer runs (tests and ``movex-p2p inspect`` read it)."""
        return None if self._driver is None else self._driver.endpoint

    @property
    def is_master(self) -> bool:
        """True while this peer runs the master."""
        return self._core.master is not None

    @property
    def master_id(self) -> str | None:
        """The current master's id, or None while none is known."""
        return self._core.election.master

    @property
    def term(self) -> int:
        """The current election term."""
        return int(self._core.election.term)

    @property
    def peers(self) -> frozenset[str]:
        """Ids of the OTHER peers with an open link now."""
        return frozenset(self._core.peers)

    @property
    def members(self) -> dict[str, PeerInfo]:
        """Every peer in the room, this one included: id -> ``mx.PeerInfo(id, name, info, role)``."""
        me = PeerInfo(self.id, self.name, self.info, self.role)
        return {self.id: me, **{str(peer): info for peer, info in self._core.members.items()}}

    @property
    def ready(self) -> bool:
        """Joined, a master is known, every resource is synced with it and every linked peer follows it."""
        synced = self._notifier.synced.is_set() and self._failure is None
        return synced and self._core.election.agreed(anyio.current_time())

    @property
    def rids(self) -> list[str]:
        """Every resource this peer holds a replica of."""
        return list(self._core.client.replicas)

    def resources(self, type: ResourceType | str | None = None) -> list[str]:
        """The rids of the room's resources (of ``type`` only, if given): those of the types this peer has."""
        if type is None:
            return self.rids
        prefix = f"{type if isinstance(type, str) else type.name}:"
        return [rid for rid in self._core.client.replicas if rid.startswith(prefix)]

    def resource_info(self, rid: str) -> ResourceInfo:
        """What this peer holds of ``rid`` (confirmed state, version, checksum, subscribers), bound or not."""
        replica = self._core.client.replicas.get(Rid(rid))
        if replica is None:
            raise ResourceNotFound(f"no resource {rid}", rid=rid)
        return ResourceInfo.of(replica)

    def events(self) -> EventReader:
        """The peer's events from now on, in order: ``async for event in peer.events(): ...``.

        Each is one of ``mx.MasterChanged``, ``mx.PeersChanged``, ``mx.PeerJoined``, ``mx.PeerLeft``,
        ``mx.Diagnostic`` and ``mx.ResourceRemoved`` (``mx.PeerEvent``). It is the one stream the
        ``on_*`` callbacks below are adapters on (they see the same events, synchronously). A reader
        that falls more than ``READER_LIMIT`` (1024) events behind loses the oldest. The iteration
        ends when the peer closes.
        """
        return self._events.reader()

    def on_event(self, callback: Callable[[PeerEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for each event of :meth:`events`, in the step that caused it."""
        return self._events.on_event(callback)

    def on_master_changed(self, callback: Callable[[str | None, int], None]) -> Callable[[], None]:
        """Call ``callback(master_id, term)`` whenever the master changes."""
        return self._events.on_master_changed(callback)

    def on_peers_changed(self, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(peer_ids)`` whenever a peer joins or leaves."""
        return self._events.on_peers_changed(callback)

    def on_diagnostic(self, callback: Callable[[Diagnostic], None]) -> Callable[[], None]:
        """Call ``callback(diagnostic)`` for each :class:`Diagnostic` (also logged)."""
        return self._events.on_diagnostic(callback)

    def on_peer_joined(self, callback: Callable[[PeerInfo], None]) -> Callable[[], None]:
        """Call ``callback(info)`` when a peer joins the room (linked and introduced)."""
        return self._events.on_peer_joined(callback)

    def on_peer_left(self, callback: Callable[[PeerInfo, str], None]) -> Callable[[], None]:
        """Call ``callback(info, reason)`` when a peer leaves: ``"left"`` (goodbye) or ``"lost"`` (declared dead)."""
        return self._events.on_peer_left(callback)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Peer:
        """Join the room: open the transport and start the peer's own task (see :meth:`close`)."""
        if self._runner is not None or self._closed:
            raise RuntimeError("this Peer was already entered: a Peer joins a room once, make a new one")
        # a spectator says so in its mDNS record, so a lobby does not count it as a player
        extra: dict[str, Any] = {} if self.role == "player" else {"role": self.role}
        if getattr(self._transport, "announces_lobby", False):  # a lobby screen's hints (RoomInfo)
            extra.update(lobby=self._lobby)  # whether the room started: the driver tells the endpoint
        connect = self._transport.connect(
            peer_id=self.id,
            name=self.name,
            room=self.room,
            secret=self._secret,
            max_frame=self._max_frame,
            identity=self.identity,
            **extra,
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("movex_p2p runs on asyncio (aiortc and zeroconf need it), not on trio") from None
        started = anyio.Event()
        self._thread = threading.get_ident()
        self._runner = loop.create_task(self._run(connect, started), name=f"movex_p2p peer {self.id}")
        try:
            await started.wait()
        except BaseException:  # cancelled while the transport opened: stop it before leaving
            self._closed = True
            await self._stop_runner()
            raise
        error, self._start_error = self._start_error, None
        if error is not None:
            self._closed = True
            await self._stop_runner()
            raise error
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close(hand_over=exc_info[0] is None)

    async def close(self) -> None:
        """Leave the room: a master hands over first (``handover_timeout``), then the transport closes.

        Idempotent, and callable in any order for several peers of one task: the peer's tasks run
        in a task of their own, not in the caller's. ``async with`` calls it. Afterwards every call
        raises ``mx.TransportError("the peer is closed")``, and so do the dispatch handles and
        requests still waiting.
        """
        await self._close(hand_over=True)

    async def _close(self, *, hand_over: bool) -> None:
        if self._closing is not None:  # closed, or closing in another task: wait for it
            with anyio.CancelScope(shield=True):
                await self._closing.wait()
            return
        self._closing = anyio.Event()
        try:
            if hand_over and self._runner is not None and self._failure is None:
                await self._hand_over()  # a cancelled caller skips it; the rest is shielded
        finally:
            self._closed = True
            with anyio.CancelScope(shield=True):
                await self._stop_runner()
            self._notifier.fail_waiters(TransportError("the peer is closed"))
            self._events.close()
            for resource in list(self._resources.values()):  # their updates() iterators end
                resource.bound = False
                resource._notify()
            self._closing.set()
        crash, self._crash = self._crash, None
        if crash is not None:
            raise crash

    async def _stop_runner(self) -> None:
        """End the peer's task (its task group, then the transport) and wait until it is over."""
        runner = self._runner
        if runner is None:
            return
        self._stop.set()
        await self._stopped.wait()

    async def _run(self, connect: AbstractAsyncContextManager[Endpoint], started: anyio.Event) -> None:
        """The peer's own task: the transport's context, and in it the driver's task.

        It is not a task of the caller's: a task group entered in ``__aenter__`` would be a cancel scope of
        the caller's task, which anyio requires to be left in reverse order of entry, so peers could only
        leave last-in first-out. The Peer owns this task: ``__aenter__`` starts it and :meth:`close` ends
        it and waits for its end (under a shield), so it never outlives the peer.
        """
        try:
            # not under a shield of ours: the transport owns a task group opened before it, and it
            # shields its own goodbye
            async with connect as endpoint, anyio.create_task_group() as tg:
                driver = self._driver = Driver(
                    self._core, endpoint, notify=self._on_ready, warn=self.log.warning, stats=self.stats
                )
                tg.start_soon(self._drive, driver)
                started.set()
                await self._stop.wait()
                driver.close()  # nothing more leaves: the transport says goodbye next
                tg.cancel_scope.cancel()
        except Exception as exc:
            if not started.is_set():
                self._start_error = exc  # __aenter__ raises it
            else:
                self.log.error("peer %s stopped on a bug (close() raises it): %r", self.id, exc)
                self._crash = exc
                self._failure = TransportError("the peer stopped on a bug")
                self._failure.__cause__ = exc
                self._notifier.fail_waiters(self._failure)
        finally:
            started.set()
            self._stopped.set()

    async def _drive(self, driver: Driver) -> None:
        try:
            await driver.run()
        except (anyio.EndOfStream, anyio.ClosedResourceError) as exc:
            if not self._closed:
                self.log.warning("transport closed under peer %s", self.id)
                self._failure = TransportError("the transport closed")
                self._failure.__cause__ = exc
                self._notifier.fail_waiters(self._failure)

    def _on_ready(self, ready: Ready) -> None:
        """What the driver does after sending a Ready's frames: tell the app, then look at the handshakes."""
        self._notifier(ready)
        if self._driver is not None:
            self._notifier.look_at_refusals(self._driver.endpoint)

    async def _hand_over(self) -> None:
        if not self.is_master or not self.peers:
            return
        assert self._driver is not None
        self._driver.execute(self._core.hand_over(anyio.current_time(), time.time()))
        with anyio.move_on_after(self._handover_timeout):
            while self._core.election.master == self.id:
                await self._notifier.master_change.wait()

    async def wait_ready(self) -> None:
        """Wait until a master is known, this peer holds every resource it has, and every peer it
        has a link to follows that same master (so a peer that just started joins the room that
        is there, and never reports ready while two masters are being sorted out).

        Raises ``mx.AuthenticationFailed`` when members of the room were found but every
        handshake with them failed on the room secret (no link is open).
        """
        grace: float | None = None
        notifier = self._notifier
        while True:
            if self._failure is not None:
                raise TransportError("the peer's transport closed") from self._failure
            refused = self._refused_by_everyone()
            if refused is not None:
                raise refused
            if not notifier.synced.is_set():
                await notifier.wake.wait()
                continue
            if not self._core.election.agreed(anyio.current_time()):
                notifier.agreement_waiters += 1  # every step wakes us
                try:
                    with anyio.move_on_after(0.1):  # a silent link's grace ends with time alone
                        await notifier.wake.wait()
                finally:
                    notifier.agreement_waiters -= 1
                continue
            if self._core.peers or not _members_unlinked(self._driver):
                return
            # ready, but alone while members of the room were seen: a handshake with them is
            # still under way, and may yet fail on the secret (a one-person room is no join)
            now = anyio.current_time()
            grace = now + _JOIN_GRACE if grace is None else grace
            if now >= grace:
                return
            with anyio.move_on_after(grace - now):
                await notifier.wake.wait()

    # -- resources -----------------------------------------------------------------------------

    async def create(
        self, type: ResourceType | str, state: Any = None, *, id: str | None = None, exist_ok: bool = True
    ) -> str:
        """Create a resource (``state`` None: the type's initial state); return its rid.

        With ``exist_ok`` (the default) creating an existing rid keeps its state and succeeds,
        so every peer may "create" the room's shared resources at start (a spectator: one it holds).
        """
        type_name = type if isinstance(type, str) else type.name
        if type_name not in self._core.types:
            raise LocalProtocolError(f"this peer has no resource type {type_name!r}: pass it in Peer(types=[...])")
        if not isinstance(type, str) and type != self._core.types[type_name]:
            raise LocalProtocolError(
                f"{type_name!r} is not the ResourceType this peer was given in Peer(types=[...]): "
                "create resources with the same object"
            )
        rid = make_rid(type_name, id or uuid.UUID(int=self._rng.getrandbits(128), version=4).hex)
        self._check_open()
        if self.role == "spectator" and exist_ok and self._core.client.has(Rid(rid)):
            return rid  # it exists: nothing to write, so a spectator may name it so too
        req, ready = self._core.create(rid, state, anyio.current_time(), time.time(), exist_ok=exist_ok)
        await self._request(req, ready)
        return rid

    async def bind(self, rid: str) -> Resource:
        """Subscribe to ``rid`` and return it, synced with the master."""
        type_name, _ = parse_rid(rid)
        if type_name not in self._core.types:
            raise LocalProtocolError(
                f"cannot bind {rid}: this peer has no resource type {type_name!r}; pass it in Peer(types=[...]) "
                "(every peer that binds a resource needs its type)"
            )
        self._core.check_compatible(type_name)
        existing = self._resources.get(Rid(rid))
        if existing is not None and existing.bound:
            return existing
        self._check_open()
        req, ready = self._core.bind(Rid(rid), self.info, anyio.current_time(), time.time())
        await self._request(req, ready)
        resource = self._resources[Rid(rid)] = Resource(self, Rid(rid))
        return resource

    async def remove(self, rid: str) -> None:
        """Delete ``rid`` everywhere: on every peer its handles get ``removed`` and their ``on_removed`` run.

        Raises ``mx.ResourceNotFound`` if the room has no such resource.
        """
        parse_rid(rid)
        self._check_open()
        req, ready = self._core.remove(Rid(rid), anyio.current_time(), time.time())
        await self._request(req, ready)

    async def get(self, rid: str) -> Any:
        """The current view of ``rid`` without binding it."""
        if not self._core.client.has(Rid(rid)):
            raise ResourceNotFound(f"no resource {rid}", rid=rid)
        return self._core.client.transformed(Rid(rid), anyio.current_time())

    async def _request(self, req: int, ready: Ready) -> fx.RequestSettled:
        done = anyio.Event()
        box: list[fx.RequestSettled] = []
        self._notifier.requests[req] = (done, box)
        self._check_open().command(ready)
        await done.wait()
        if not box:
            raise TransportError("the peer closed before the master answered")
        result = box[0]
        if result.error is not None:
            raise REFUSALS[result.refusal](result.error, rid=result.rid)
        return result

    def _dispatch(self, rid: Rid, action: Action, private: Action | None) -> DispatchHandle:
        driver = self._driver
        if driver is None or self._closed or self._failure is not None or self._thread != threading.get_ident():
            driver = self._check_open()  # raises
        # The one rule for the app's commands: the core steps here, in the caller's task; a master
        # settles its own dispatch at once, and the frames leave at the end of this loop turn (or
        # with the driver's step, if input comes first): a burst of dispatches is one frame per peer.
        seq, ready = self._core.dispatch(rid, action, private, anyio.current_time(), time.time())
        handle = self._notifier.handles[(rid, seq)] = DispatchHandle(rid, seq)
        driver.command(ready)
        return handle

    def _unbind(self, resource: Resource) -> None:
        if self._resources.get(resource.rid) is resource:
            del self._resources[resource.rid]
        if not self._closed and self._driver is not None:
            self._driver.command(self._core.unbind(resource.rid, anyio.current_time(), time.time()))

    def _refused_by_everyone(self) -> AuthenticationFailed | None:
        """The ``AuthenticationFailed`` for handshakes that failed on the secret while no link is open."""
        if self._driver is not None:
            self._notifier.look_at_refusals(self._driver.endpoint)
        return self._notifier.refused_by_everyone(self.room) if self._notifier.auth_seen and not self.peers else None

    def _check_open(self) -> Driver:
        """The driver, if the peer may take a command now (open, on its loop's thread); else raise why not."""
        if self._thread is not None and threading.get_ident() != self._thread:
            raise RuntimeError(
                f"peer {self.id} was called from another thread than its event loop's: a Peer is not thread-safe. "
                "From another thread (a game loop) use movex_p2p.embed.start_peer, which runs the peer on a "
                "thread of its own and is safe to call from any thread"
            )
        if self._closed or self._failure is not None:
            raise TransportError("the peer is closed") from self._failure
        if self._driver is None:
            raise NotSynced("use the peer inside 'async with'")
        return self._driver

    def __repr__(self) -> str:
        return f"<Peer {self.id} {'master' if self.is_master else 'client'} term={self.term} peers={len(self.peers)}>"


def _check_arguments(
    room: str, types: Sequence[ResourceType], name: str | None, role: Role, opaque: bool, stuck_after: float
) -> None:
    """Raise ValueError or TypeError for an unfit ``Peer(...)`` argument."""
    if not stuck_after > 0:
        raise ValueError("stuck_after must be a positive number of seconds")
    if not room or not isinstance(room, str):
        raise ValueError("room must be a non-empty str")
    if role not in ROLES:
        raise ValueError(f"role must be 'player' or 'spectator', not {role!r}")
    if opaque and role != "spectator":
        raise ValueError("opaque=True needs role='spectator': only a spectator can hold types it does not have")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise ValueError(f"name must be a str of at most {MAX_NAME} characters")
    if not isinstance(types, Sequence) or not all(isinstance(t, ResourceType) for t in types):
        raise TypeError("types must be a list of mx.ResourceType")


def _members_unlinked(driver: Driver | None) -> bool:
    """True when the endpoint saw peers of this room that it holds no link with, or a handshake
    with one failed (someone of the room dialed us and hung up: the dialer checks the secret first)."""
    if driver is None:
        return False
    seen = driver.endpoint.status()
    return bool(set(seen.seen) - set(seen.linked)) or (not seen.linked and bool(seen.refused))
