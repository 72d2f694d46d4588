"""The node: ``Peer`` drives one NodeCore over a transport endpoint.

The core is pure; this module owns the clock, the randomness, the task group and the endpoint,
and does nothing but feed the core and execute the :class:`~movex_p2p.nodecore.Ready` each call
returns (send its frames, report its faults and dropped input, hand its events to the app).
All core calls happen on the event loop's thread, so the core needs no locks. Three places
call it:

- the app's coroutines (``create``, ``bind``, ``dispatch``...): the command runs at once (a
  master confirms its own dispatch in the same call); a dispatch's frames are held and leave
  with the next step, so a burst of dispatches is one frame per peer;
- the pump task: it takes every transport event that is ready (one wake-up per batch) and feeds
  them to the core in one step, so replies to a burst leave as one frame per peer;
- the ticker task: it fires the cores' timers;
- the flusher task: woken when dispatches are held, it sends them at the end of the loop turn
  unless the pump's step took them first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, assert_never

import anyio

from . import wire
from .callbacks import Callbacks
from .election import machine as el
from .errors import (
    ActionRejected,
    ActionStuck,
    AuthenticationFailed,
    ChannelClosed,
    IncompatibleType,
    LocalProtocolError,
    MovexError,
    NotSynced,
    ResourceNotFound,
    StateTooLarge,
    TransportError,
)
from .identity import KEY_SIZE, Identity
from .ids import PeerId, Rid
from .lobby import Lobby, check_game, check_max_players, encode_info, room_version
from .nodecore import (
    Forked,
    MasterChanged,
    NodeCore,
    NodeEvent,
    PeerJoined,
    PeerLeft,
    PeersChanged,
    Ready,
    TypeConflict,
    incompatibility,
)
from .presence import MAX_NAME, ROLES, PeerInfo, Role
from .resource import effects as fx
from .resource.client import STUCK_AFTER, is_opaque
from .resource.messages import Refusal
from .resource.replica import Replica
from .resource.state import freeze, hexdigest
from .resource.types import DEFAULT_MAX_BYTES, Action, ResourceType, make_rid, parse_rid
from .signing import ED25519, FAKE, FakeSigner
from .transport.base import Endpoint, Transport, TransportEvent

if TYPE_CHECKING:
    from .transport.mesh import LanStatus

__all__ = ["Diagnostic", "DispatchHandle", "Peer", "Resource", "ResourceInfo"]

log = logging.getLogger(__name__)

_REFUSALS: Final[dict[Refusal, type[ActionRejected]]] = {
    "rejected": ActionRejected,
    "not_found": ResourceNotFound,
    "too_large": StateTooLarge,
    "incompatible": IncompatibleType,
}
"""The error a refused request or action raises, by the master's reason."""

_TICK: Final = 0.01  # seconds: the longest the timers go unchecked (deadlines may move while we sleep)
_BATCH: Final = 256  # transport events fed to the core per step at most
_WARNED_LIMIT: Final = 4096  # distinct (peer, reason) pairs remembered for deduplication
_JOIN_GRACE: Final = 2.5
"""Seconds ``wait_ready`` waits, once ready alone, for a link to members of the room it has seen (the
higher id of a pair dials after 1 s: then a wrong secret shows on both sides)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """Something a peer should know about its room (also logged: WARNING, or ERROR for a fault).

    ``kind``:

    - ``"diverged"``: ``rid`` differed from the master here (a reducer that is not pure?); resynced.
    - ``"auth_failed"``: a handshake failed on the room secret, either way (``peer`` if known).
    - ``"incompatible_type"``: ``peer`` has another version of a resource type (another build).
    - ``"dropped"``: input from ``peer`` was refused (``reason`` says why).
    - ``"slow_link"``: the master (``peer``) confirmed nothing for a while; actions were sent again.
    - ``"stuck"``: own actions on ``rid`` (``reason`` names their seqs) stayed unconfirmed even
      proposed again; their handles raise :class:`ActionStuck` (they stay pending).
    - ``"forked"``: the master ``peer`` was caught forging (an action its author never signed, a
      reveal that breaks its commitment, or two different histories sealed for one log index); it
      is not followed any more.
    - ``"app_error"``: the app's ``can_reveal``, its reducer revealing a private action, its
      ``on_unrevealed`` or its ``on_deadline`` raised on ``rid`` (``reason`` says what): no reveal,
      that private half dropped, or the state left as it was.
    - ``"private_lost"``: own private actions on ``rid`` were never revealed (this process lacks
      them after a restart, or they reached the master ``peer`` too late); ``on_unrevealed`` ran.
    - ``"fault"``: a bug in movex_p2p (``detail`` holds the traceback; please report it).
    """

    kind: str
    peer: str | None
    reason: str
    rid: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceInfo:
    """What this peer holds of one resource: confirmed state, version, checksum and subscribers.

    ``opaque``: a resource of a type this peer does not have, held read-only as the master's
    snapshots (a spectator with ``opaque=True``, e.g. ``movex-p2p inspect``).
    """

    rid: str
    version: int
    checksum: str
    subscribers: dict[str, dict[str, Any]]
    state: Any
    opaque: bool = False


class DispatchHandle:
    """What ``dispatch`` returns: await it to wait until the master confirmed the action."""

    __slots__ = ("_done", "_error", "rid", "seq")

    def __init__(self, rid: Rid, seq: int) -> None:
        self.rid = rid
        self.seq = seq
        self._done = anyio.Event()
        self._error: MovexError | None = None

    @property
    def done(self) -> bool:
        """True once the master confirmed or rejected the action."""
        return self._done.is_set()

    @property
    def error(self) -> MovexError | None:
        """The rejection, once settled (None when confirmed)."""
        return self._error

    def _settle(self, error: MovexError | None) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> None:
        """Wait for the master; raise ActionRejected if it refused the action."""
        await self._done.wait()
        if self._error is not None:
            raise self._error

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()


class Resource:
    """A bound resource: its view, dispatch, and change notifications.

    Once the resource is removed (``peer.remove(rid)`` on any peer), ``removed`` is True, the
    ``on_removed`` callbacks have run and every other call raises ``mx.ResourceNotFound``.
    """

    def __init__(self, peer: Peer, rid: Rid) -> None:
        self._peer = peer
        self._client = peer._core.client
        self.rid = rid
        self._callbacks: Callbacks[[Any]] = Callbacks(f"on_update of {rid}", log=peer.log)
        self._removed_cbs: Callbacks[[]] = Callbacks(f"on_removed of {rid}", log=peer.log)
        self._changed = anyio.Event()
        self._generation = 0
        self._waiting = 0
        self._gone = False
        self.bound = True

    @property
    def removed(self) -> bool:
        """True once the resource was removed from the room."""
        return self._gone

    def _replica(self) -> Replica:
        replica = None if self._gone else self._client.replicas.get(self.rid)
        if replica is None:
            raise ResourceNotFound(f"{self.rid} was removed", rid=self.rid)
        return replica

    @property
    def state(self) -> Any:
        """The view: confirmed state + own private actions + pending actions, transformed."""
        self._replica()
        return self._client.transformed(self.rid, time.time())

    @property
    def confirmed(self) -> Any:
        """The state the master confirmed (no pending actions, no private overlay)."""
        return self._replica().state

    @property
    def version(self) -> int:
        """How many changes the master has confirmed."""
        return self._replica().version

    @property
    def checksum(self) -> str:
        """Checksum of the confirmed state (equal on every synced peer)."""
        return hexdigest(self._replica().checksum)

    @property
    def subscribers(self) -> dict[str, dict[str, Any]]:
        """Bound peers: peer id -> presence info."""
        return dict(self._replica().subscribers)

    @property
    def pending(self) -> int:
        """Own actions not yet confirmed."""
        self._replica()
        return len(self._client.pending(self.rid))

    def dispatch(self, action: Action) -> DispatchHandle:
        """Apply ``action`` optimistically and send it; await the handle to wait for the master.

        Raises ``mx.ActionRejected`` at once, sending nothing, if the reducer breaks its contract
        on this peer's view (returns None or data that is not JSON-like), and ``mx.InvalidState``
        if the payload is not JSON-like data.
        """
        self._replica()
        return self._peer._dispatch(self.rid, action, None)

    def dispatch_private(self, private: Action, public: Action) -> DispatchHandle:
        """Everyone sees ``public``; only this peer sees ``private`` until the type reveals it."""
        self._replica()
        return self._peer._dispatch(self.rid, public, private)

    def on_update(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(state)`` on every change of the view; returns an unsubscribe function.

        ``state`` is the new view (as :attr:`state` reads it). The callback runs on the event loop's
        thread, synchronously, inside the step that changed the view: once per change, none missed,
        so keep it short and do not block; it cannot await (start a task, or use :meth:`updates`).
        A callback that raises is logged (logger ``movex_p2p.node``) and the others still run. It
        stops after ``unsubscribe()``, :meth:`unbind`, the removal of the resource or ``peer.close()``.
        """
        return self._callbacks.add(callback)

    def on_removed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` once the resource is removed from the room; returns an unsubscribe function."""
        return self._removed_cbs.add(callback)

    async def updates(self) -> AsyncIterator[Any]:
        """Yield the view now, then after every change: ``async for state in res.updates(): ...``.

        Changes between two reads coalesce: a reader that is slower than the changes gets the
        latest view, not each one in between (use :meth:`on_update` to see every change). Several
        iterators may run at once, each sees every view it has time for. The iteration ends when
        the resource is unbound or removed, or the peer closes.
        """
        seen = -1
        while self.bound:
            if seen != self._generation:
                seen = self._generation
                yield self.state
                continue
            self._waiting += 1
            try:
                await self._changed.wait()
            finally:
                self._waiting -= 1

    async def unbind(self) -> None:
        """Stop being a subscriber; the replica stays in sync, notifications stop."""
        if self.bound:
            self.bound = False
            if not self._gone:
                self._peer._unbind(self)
            self._notify()

    def _notify(self) -> None:
        self._generation += 1
        if self._waiting:  # an Event per change costs; make one only when updates() waits
            event, self._changed = self._changed, anyio.Event()
            event.set()
        if self._callbacks.registered and self.bound:
            try:
                state = self.state
            except MovexError as exc:  # the type's transform failed on this state: the app's hook, not the peer
                self._peer.log.warning("%s: no update for on_update callbacks: %s", self.rid, exc)
                return
            self._callbacks(state)

    def _on_removed(self) -> None:
        self._gone = True
        self.bound = False
        self._notify()
        self._removed_cbs()

    def __repr__(self) -> str:
        version = "removed" if self._gone else f"v{self.version}"
        return f"<Resource {self.rid} {version}>"


class Peer:
    """One peer of a room; ``async with Peer(...) as peer`` joins, leaving (:meth:`close`) hands the master over.

    Not thread-safe: use a Peer on the thread of the event loop it was entered on (its coroutines,
    ``dispatch``, its properties). A call from another thread raises ``RuntimeError`` rather than
    race with the network tasks; a synchronous game loop on its own thread uses
    ``movex_p2p.embed.start_peer`` instead, which runs the Peer on a thread of its own and is safe
    to call from any thread (``EmbeddedPeer.call`` runs a coroutine on that loop).

    ``role="spectator"``: never master, never counted in votes or quorum, still receives every
    update and every reveal. ``opaque=True`` (spectators only) also holds, read-only, the
    resources of types this peer does not have (``resource_info``), as ``movex-p2p inspect`` does.
    ``identity``: a persistent key pair (``mx.Identity.load_or_create(path)``); ``peer.id`` derives
    from it, so a restarted peer is the same peer (same author, its held private actions its own).
    ``stuck_after``: seconds an own action may wait unconfirmed once a master is known; then it is
    proposed again, and after as long again its handle raises :class:`ActionStuck` (diagnostic
    ``stuck``). It stays pending: nothing is lost, and the state shows it if it goes through later.
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
        game: str | None = None,
        max_players: int | None = None,
        lobby_info: dict[str, Any] | None = None,
        _fake_signer: bool = False,
    ) -> None:
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
            entropy=os.urandom,
        )
        self._core.client.stuck_after = stuck_after
        self._endpoint: Endpoint | None = None
        self._runner: asyncio.Task[None] | None = None  # the peer's own task (see _run)
        self._stop = anyio.Event()  # set: the runner leaves
        self._stopped = anyio.Event()  # set by the runner when it is over
        self._closing: anyio.Event | None = None  # set once close() is done
        self._start_error: Exception | None = None  # the transport failed to open
        self._crash: Exception | None = None  # a task of the peer raised: close() raises it
        self._thread: int | None = None  # the event loop's thread (a Peer is not thread-safe)
        self._resources: dict[Rid, Resource] = {}
        self._handles: dict[tuple[Rid, int], DispatchHandle] = {}
        self._requests: dict[int, tuple[anyio.Event, list[fx.RequestSettled]]] = {}
        self._ready = anyio.Event()
        self._agreement_waiters = 0  # wait_ready() calls waiting for every linked peer to agree
        self._master_change = anyio.Event()
        self._end_of_turn = anyio.Event()
        self._flush_armed = False  # the flusher was woken for held dispatches
        self._closed = False
        self._failure: BaseException | None = None
        self._warned: set[tuple[str, str]] = set()
        self._linked: frozenset[str] = frozenset()
        self._wake = anyio.Event()  # set (and replaced) when wait_ready should look again
        self._auth_seen = 0  # handshakes the endpoint counted as failed on the secret, as last seen
        self._auth_last: AuthenticationFailed | None = None
        self.log = logging.LoggerAdapter(log, {"peer": self.id})
        self._master_cbs: Callbacks[[str | None, int]] = Callbacks("on_master_changed", log=self.log)
        self._peers_cbs: Callbacks[[frozenset[str]]] = Callbacks("on_peers_changed", log=self.log)
        self._diagnostic_cbs: Callbacks[[Diagnostic]] = Callbacks("on_diagnostic", log=self.log)
        self._joined_cbs: Callbacks[[PeerInfo]] = Callbacks("on_peer_joined", log=self.log)
        self._left_cbs: Callbacks[[PeerInfo, str]] = Callbacks("on_peer_left", log=self.log)
        self.stats = dict.fromkeys(("events_in", "frames_out", "dropped", "faults", "resyncs", "rebased", "stuck"), 0)

    # -- properties ----------------------------------------------------------------------------

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
        return self._ready.is_set() and self._failure is None and self._core.election.agreed(anyio.current_time())

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
        return ResourceInfo(
            rid=rid,
            version=replica.version,
            checksum=hexdigest(replica.checksum),
            subscribers={k: dict(v) for k, v in replica.subscribers.items()},
            state=replica.state,
            opaque=is_opaque(replica.type),
        )

    def on_master_changed(self, callback: Callable[[str | None, int], None]) -> Callable[[], None]:
        """Call ``callback(master_id, term)`` whenever the master changes."""
        return self._master_cbs.add(callback)

    def on_peers_changed(self, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(peer_ids)`` whenever a peer joins or leaves."""
        return self._peers_cbs.add(callback)

    def on_diagnostic(self, callback: Callable[[Diagnostic], None]) -> Callable[[], None]:
        """Call ``callback(diagnostic)`` for each :class:`Diagnostic` (also logged)."""
        return self._diagnostic_cbs.add(callback)

    def on_peer_joined(self, callback: Callable[[PeerInfo], None]) -> Callable[[], None]:
        """Call ``callback(info)`` when a peer joins the room (linked and introduced)."""
        return self._joined_cbs.add(callback)

    def on_peer_left(self, callback: Callable[[PeerInfo, str], None]) -> Callable[[], None]:
        """Call ``callback(info, reason)`` when a peer leaves: ``"left"`` (goodbye) or ``"lost"`` (declared dead)."""
        return self._left_cbs.add(callback)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Peer:
        """Join the room: open the transport and start the peer's own task (see :meth:`close`)."""
        if self._runner is not None or self._closed:
            raise RuntimeError("this Peer was already entered: a Peer joins a room once, make a new one")
        # a spectator says so in its mDNS record, so a lobby does not count it as a player
        extra: dict[str, Any] = {} if self.role == "player" else {"role": self.role}
        if getattr(self._transport, "announces_lobby", False):  # a lobby screen's hints (RoomInfo)
            extra.update(lobby=self._lobby, started=lambda: bool(self._core.client.replicas))
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
            self._fail_waiters(TransportError("the peer is closed"))
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
        """The peer's own task: the transport's context and the task group of pump, ticker and flusher.

        It is not a task of the caller's: a task group entered in ``__aenter__`` would be a cancel
        scope of the caller's task, which anyio requires to be left in reverse order of entry, so
        peers could only leave last-in first-out. The Peer owns this task: ``__aenter__`` starts it
        and :meth:`close` ends it and waits for its end (under a shield), so it never outlives the peer.
        """
        try:
            # not under a shield of ours: the transport owns a task group opened before it, and it
            # shields its own goodbye
            async with connect as endpoint, anyio.create_task_group() as tg:
                self._endpoint = endpoint
                self._execute(self._core.start(anyio.current_time(), time.time()))
                tg.start_soon(self._pump)
                tg.start_soon(self._ticker)
                tg.start_soon(self._flusher)
                started.set()
                await self._stop.wait()
                tg.cancel_scope.cancel()
        except Exception as exc:
            if not started.is_set():
                self._start_error = exc  # __aenter__ raises it
            else:
                self.log.error("peer %s stopped on a bug (close() raises it): %r", self.id, exc)
                self._crash = exc
                self._failure = TransportError("the peer stopped on a bug")
                self._failure.__cause__ = exc
                self._fail_waiters(self._failure)
        finally:
            started.set()
            self._stopped.set()

    async def _hand_over(self) -> None:
        if not self.is_master or not self.peers:
            return
        self._execute(self._core.hand_over(anyio.current_time(), time.time()))
        with anyio.move_on_after(self._handover_timeout):
            while self._core.election.master == self.id:
                await self._master_change.wait()

    async def wait_ready(self) -> None:
        """Wait until a master is known, this peer holds every resource it has, and every peer it
        has a link to follows that same master (so a peer that just started joins the room that
        is there, and never reports ready while two masters are being sorted out).

        Raises ``mx.AuthenticationFailed`` when members of the room were found but every
        handshake with them failed on the room secret (no link is open).
        """
        grace: float | None = None
        while True:
            if self._failure is not None:
                raise TransportError("the peer's transport closed") from self._failure
            refused = self._refused_by_everyone()
            if refused is not None:
                raise refused
            if not self._ready.is_set():
                await self._wake.wait()
                continue
            if not self._core.election.agreed(anyio.current_time()):
                self._agreement_waiters += 1  # every step wakes us (see _execute)
                try:
                    with anyio.move_on_after(0.1):  # a silent link's grace ends with time alone
                        await self._wake.wait()
                finally:
                    self._agreement_waiters -= 1
                continue
            if self._core.peers or not self._members_unlinked():
                return
            # ready, but alone while members of the room were seen: a handshake with them is
            # still under way, and may yet fail on the secret (a one-person room is no join)
            now = anyio.current_time()
            grace = now + _JOIN_GRACE if grace is None else grace
            if now >= grace:
                return
            with anyio.move_on_after(grace - now):
                await self._wake.wait()

    def _members_unlinked(self) -> bool:
        """True when the endpoint saw peers of this room that it holds no link with, or a handshake
        with one failed (someone of the room dialed us and hung up: the dialer checks the secret first)."""
        status = getattr(self._endpoint, "status", None)
        if not callable(status):
            return False
        seen: LanStatus = status()
        return bool(set(seen.seen) - set(seen.linked)) or (not seen.linked and bool(seen.refused))

    def _refused_by_everyone(self) -> AuthenticationFailed | None:
        self._poll_auth()
        if not self._auth_seen or self._core.peers:
            return None
        last = f" (the last: {self._auth_last})" if self._auth_last is not None else ""
        error = AuthenticationFailed(
            f"room {self.room!r}: peers were found, but every handshake with them failed on the room secret "
            f"(no link is open){last}: give every peer the same secret"
        )
        error.__cause__ = self._auth_last
        return error

    def _poll_auth(self) -> None:
        """Report handshakes the endpoint counted as failed on the secret since the last look."""
        endpoint = self._endpoint
        refused = getattr(endpoint, "refused", None)
        if refused is None:
            return
        count = int(refused.get("wrong secret", 0))
        if count <= self._auth_seen:
            return
        new, self._auth_seen = count - self._auth_seen, count
        # the endpoint keeps short texts (an exception would keep its traceback alive)
        failures = [str(f) for f in list(getattr(endpoint, "auth_failures", ()))[-new:]]
        if failures:
            self._auth_last = AuthenticationFailed(failures[-1])
        for reason in [str(f) for f in failures] or ["a handshake failed on the room secret"]:
            self._diagnose(
                Diagnostic(kind="auth_failed", peer=None, reason=f"{reason}: give every peer the same secret")
            )
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        self._wake.set()
        self._wake = anyio.Event()

    # -- resources -----------------------------------------------------------------------------

    async def create(
        self, type: ResourceType | str, state: Any = None, *, id: str | None = None, exist_ok: bool = True
    ) -> str:
        """Create a resource (``state`` None: the type's initial state); return its rid.

        With ``exist_ok`` (the default) creating an existing rid keeps its state and succeeds,
        so every peer may "create" the room's shared resources at start.
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
        return self._core.client.transformed(Rid(rid), time.time())

    async def _request(self, req: int, ready: Ready) -> fx.RequestSettled:
        done = anyio.Event()
        box: list[fx.RequestSettled] = []
        self._requests[req] = (done, box)
        self._execute(ready)
        await done.wait()
        if not box:
            raise TransportError("the peer closed before the master answered")
        result = box[0]
        if result.error is not None:
            cls = _REFUSALS[result.refusal]
            raise cls(result.error, rid=result.rid)
        return result

    def _dispatch(self, rid: Rid, action: Action, private: Action | None) -> DispatchHandle:
        if self._closed or self._failure is not None or self._endpoint is None or self._thread != threading.get_ident():
            self._check_open()  # raises
        # The frames are held: they leave with the core's next step, the pump's (replies to what
        # arrived meanwhile) or the flusher's at the end of this loop turn, whichever comes first.
        # So a burst of dispatches, and a master's own among its confirmations, is one frame per peer.
        seq, ready = self._core.dispatch(rid, action, private, anyio.current_time(), time.time(), hold=True)
        handle = self._handles[(rid, seq)] = DispatchHandle(rid, seq)
        self._execute(ready)  # a master settles its own dispatch here, at once
        if not self._flush_armed and self._core.holding:
            self._flush_armed = True
            self._end_of_turn.set()
        return handle

    def _unbind(self, resource: Resource) -> None:
        if self._resources.get(resource.rid) is resource:
            del self._resources[resource.rid]
        if not self._closed:
            self._execute(self._core.unbind(resource.rid, anyio.current_time(), time.time()))

    def _check_open(self) -> None:
        if self._thread is not None and threading.get_ident() != self._thread:
            raise RuntimeError(
                f"peer {self.id} was called from another thread than its event loop's: a Peer is not thread-safe. "
                "From another thread (a game loop) use movex_p2p.embed.start_peer, which runs the peer on a "
                "thread of its own and is safe to call from any thread"
            )
        if self._closed or self._failure is not None:
            raise TransportError("the peer is closed") from self._failure
        if self._endpoint is None:
            raise NotSynced("use the peer inside 'async with'")

    # -- the tasks -----------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Feed every transport event that is ready to the core in one step."""
        endpoint = self._endpoint
        assert endpoint is not None
        try:
            while True:
                events = self._ready_events([await endpoint.receive()])
                # one step; its Ready also carries every frame held since the last step
                self._execute(self._core.receive(events, anyio.current_time(), time.time()))
        except (anyio.EndOfStream, anyio.ClosedResourceError) as exc:
            if not self._closed:
                self.log.warning("transport closed under peer %s", self.id)
                self._failure = TransportError("the transport closed")
                self._failure.__cause__ = exc
                self._fail_waiters(self._failure)

    def _ready_events(self, events: list[TransportEvent]) -> list[TransportEvent]:
        """``events`` plus what the endpoint has ready now, up to a batch (never waits)."""
        receive_nowait: Callable[[], TransportEvent] | None = getattr(self._endpoint, "receive_nowait", None)
        if receive_nowait is not None:
            while len(events) < _BATCH:
                try:
                    events.append(receive_nowait())
                except anyio.WouldBlock:
                    break
        self.stats["events_in"] += len(events)
        return events

    async def _flusher(self) -> None:
        """At the end of a loop turn with dispatches: send what they held (unless the pump did)."""
        while True:
            await self._end_of_turn.wait()
            self._end_of_turn = anyio.Event()
            self._flush_armed = False
            self._execute(self._core.flush(anyio.current_time(), time.time()))

    async def _ticker(self) -> None:
        """Fire the cores' timers (a task of its own, so the pump waits on the transport with no cancel scope).

        It never reads the endpoint itself: an event handed to the waiting pump is not in the
        stream any more, so the ticker would take the events behind it first.
        """
        while True:
            wait = self._core.seconds_to_deadline(anyio.current_time(), time.time())
            await anyio.sleep(_TICK if wait is None else min(wait, _TICK))
            self._execute(self._core.tick(anyio.current_time(), time.time()))
            self._poll_auth()

    # -- executing a Ready ---------------------------------------------------------------------

    def _execute(self, ready: Ready) -> None:
        """Send the step's frames, report its faults and dropped input, then tell the app."""
        if self._agreement_waiters:
            self._wake_waiters()
        endpoint = self._endpoint
        if endpoint is not None:
            for peer, frame in ready.frames.items():  # the hot path: _send, inlined
                try:
                    endpoint.send(peer, frame)
                except ChannelClosed:
                    pass  # the link went down meanwhile; the election and resync take it from here
                except TransportError as exc:
                    self.log.warning("sending to %s failed: %s", peer, exc)
            self.stats["frames_out"] += len(ready.frames)
            for peer, frame in ready.more:  # big states: frames that did not fit the first
                self._send(endpoint.send, {peer: frame})
            if ready.datagrams:
                self._send(endpoint.send_datagram, ready.datagrams)
        if ready.faults or ready.dropped:
            self._report(ready)
        if ready.events:
            changed: set[Rid] = set()
            for event in ready.events:
                self._on_event(event, changed)
            for rid in changed:
                resource = self._resources.get(rid)
                if resource is not None:
                    resource._notify()

    def _send(self, send: Callable[[PeerId, bytes], None], frames: dict[PeerId, bytes]) -> None:
        for peer, frame in frames.items():
            try:
                send(peer, frame)
            except ChannelClosed:
                pass  # the link went down meanwhile; the election and resync take it from here
            except TransportError as exc:
                self.log.warning("sending to %s failed: %s", peer, exc)
        self.stats["frames_out"] += len(frames)

    def _report(self, ready: Ready) -> None:
        """Faults at ERROR with their traceback; dropped input at WARNING, once per (peer, reason)."""
        for fault in ready.faults:
            self.stats["faults"] += 1
            self.log.error("bug: %s from %s raised %s\n%s", fault.what, fault.sender, fault.error, fault.traceback)
            self._diagnostic_cbs(
                Diagnostic(kind="fault", peer=fault.sender, reason=fault.error, detail=fault.traceback)
            )
        for dropped in ready.dropped:
            self.stats["dropped"] += 1
            self._diagnose(Diagnostic(kind="dropped", peer=dropped.sender, reason=dropped.reason))

    def _diagnose(self, diagnostic: Diagnostic) -> None:
        """Log ``diagnostic`` at WARNING and hand it to the on_diagnostic callbacks, once per (kind, peer, reason)."""
        key = (f"{diagnostic.kind}:{diagnostic.peer}", diagnostic.reason[:40])
        if key in self._warned:  # remote input or repeated incidents: once per (peer, reason)
            return
        if len(self._warned) >= _WARNED_LIMIT:
            self._warned.clear()
        self._warned.add(key)
        where = f" from {diagnostic.peer}" if diagnostic.peer else ""
        self.log.warning("%s%s: %s", diagnostic.kind, where, diagnostic.reason)
        self._diagnostic_cbs(diagnostic)

    def _on_event(self, event: NodeEvent, changed: set[Rid]) -> None:
        match event:
            case fx.StateChanged(rid=rid) | fx.PresenceChanged(rid=rid):
                changed.add(rid)
            case fx.ActionSettled(rid=rid, seq=seq, error=error, refusal=refusal):
                handle = self._handles.pop((rid, seq), None)
                if handle is not None:
                    failure: MovexError | None = None
                    if error is not None:
                        failure = _REFUSALS[refusal](error, rid=rid)
                    handle._settle(failure)
            case fx.RequestSettled(req=req):
                waiter = self._requests.pop(req, None)
                if waiter is not None:
                    waiter[1].append(event)
                    waiter[0].set()
            case fx.Rebased(rid=rid, count=count):
                self.stats["rebased"] += count
                self.log.warning("%s: %d own actions confirmed by a deposed master were re-sent", rid, count)
            case fx.ResyncStarted(rid=rid, reason=reason):
                self.stats["resyncs"] += 1
                if reason.startswith(("checksum mismatch", "reducer raised")):
                    reason = f"{reason}: resynced; a reducer that is not pure (clock, random, set order) does this"
                else:  # a lost frame, or a replica of a deposed master's history: nothing for the app to fix
                    reason = f"{reason}: resynced"
                self._diagnostic_cbs(Diagnostic(kind="diverged", peer=self.master_id, reason=reason, rid=rid))
                self.log.warning("%s diverged (%s)", rid, reason)
            case fx.Stalled(master=master, seconds=seconds, pending=pending):
                reason = f"the master confirmed nothing for {seconds:.1f} s: {pending} pending actions sent again"
                self._diagnose(Diagnostic(kind="slow_link", peer=master, reason=reason))
            case fx.Stuck(rid=rid, seqs=seqs, master=master, seconds=seconds):
                reason = (
                    f"{len(seqs)} own actions (seqs {_seq_ranges(seqs)}) unconfirmed {seconds:.0f} s after the master "
                    f"{master} was known, even proposed again; they stay pending"
                )
                self.stats["stuck"] += len(seqs)
                self._diagnose(Diagnostic(kind="stuck", peer=master, reason=reason, rid=rid))
                for seq in seqs:
                    handle = self._handles.pop((rid, seq), None)
                    if handle is not None:
                        handle._settle(ActionStuck(reason, rid=rid, seq=seq, seconds=seconds))
            case fx.AppRaised(rid=rid, where=where, error=error):
                reason = f"{where} raised {error}"
                self._diagnose(Diagnostic(kind="app_error", peer=None, reason=reason, rid=rid))
            case fx.PrivateLost(rid=rid, seqs=seqs, master=master):
                reason = (
                    f"own private actions (seqs {_seq_ranges(seqs)}) were never revealed: this process does not "
                    "hold them (a restart?) or they reached the master too late; the type's on_unrevealed ran"
                )
                self._diagnose(Diagnostic(kind="private_lost", peer=master, reason=reason, rid=rid))
            case fx.ResourceRemoved(rid=rid):
                resource = self._resources.pop(rid, None)
                if resource is not None:
                    resource._on_removed()
            case fx.Synced():
                self._ready.set()
                self._wake_waiters()
            case MasterChanged(master=master, term=term):
                self.log.info("master is now %s (term %s)", master, term)
                if self._ready.is_set():
                    self._ready = anyio.Event()
                self._master_change.set()
                self._master_change = anyio.Event()
                self._master_cbs(master, term)
            case Forked(peer=peer, reason=reason):
                self.log.warning("%s was caught forging (%s): it is not followed any more", peer, reason)
                self._diagnose(Diagnostic(kind="forked", peer=peer, reason=reason))
            case PeersChanged(peers=peers):
                self._linked = peers
                self._peers_cbs(peers)
                self._wake_waiters()
            case PeerJoined(info=info):
                self.log.info("%s (%s) joined as a %s", info.name, info.id, info.role)
                self._joined_cbs(info)
            case PeerLeft(info=info, reason=reason):
                self.log.info("%s (%s) %s", info.name, info.id, reason)
                self._left_cbs(info, reason)
            case TypeConflict(peer=peer, name=name, type=type_name, ours=ours, theirs=theirs):
                reason = incompatibility(type_name, ours, theirs, peer, name)
                self._diagnose(Diagnostic(kind="incompatible_type", peer=peer, reason=reason))
            case _:
                assert_never(event)

    def _fail_waiters(self, error: MovexError) -> None:
        for handle in self._handles.values():
            handle._settle(error)
        self._handles.clear()
        for done, _ in self._requests.values():
            done.set()
        self._requests.clear()
        self._ready.set()
        self._wake_waiters()

    def __repr__(self) -> str:
        role = "master" if self.is_master else "client"
        return f"<Peer {self.id} {role} term={self.term} peers={len(self.peers)}>"


def _seq_ranges(seqs: tuple[int, ...]) -> str:
    """``1-3, 7`` for (1, 2, 3, 7): seqs as short runs."""
    runs: list[list[int]] = []
    for seq in sorted(seqs):
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
