"""The node: ``Peer`` drives the cores (client, master, election) over a transport endpoint.

Every core is pure; this module owns the clock, the randomness, the task group and the
endpoint. All core calls happen on the event loop's thread, so cores need no locks: app
coroutines call into them directly, and one task pumps the endpoint's events and the cores'
deadlines. Effects are executed at once; messages for one peer queued while handling one
batch of input leave as one frame.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

from . import wire
from .election import machine as el
from .election.messages import MESSAGES as ELECTION_MESSAGES
from .errors import (
    ActionRejected,
    ChannelClosed,
    LocalProtocolError,
    MovexError,
    NotSynced,
    RemoteProtocolError,
    ResourceNotFound,
    TransportError,
)
from .ids import PeerId, Rid, Term
from .resource import effects as fx
from .resource import messages as rm
from .resource.client import ClientCore
from .resource.master import MasterCore
from .resource.state import hexdigest
from .resource.types import Action, ResourceType, make_rid, parse_rid
from .transport.base import Endpoint, Frame, PeerDown, PeerUp, Transport

__all__ = ["DispatchHandle", "Peer", "Resource"]

log = logging.getLogger(__name__)

_ELECTION_TYPES: Final = tuple(ELECTION_MESSAGES.values())
_TO_MASTER: Final = (rm.Create, rm.Bind, rm.Unbind, rm.Propose, rm.Restore, rm.Hello, rm.SyncRequest)
_IDLE_WAKE: Final = 0.05  # seconds: the longest the pump sleeps without looking at deadlines


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
    """A bound resource: its view, dispatch, and change notifications."""

    def __init__(self, peer: Peer, rid: Rid) -> None:
        self._peer = peer
        self.rid = rid
        self._callbacks: list[Callable[[Any], None]] = []
        self._changed = anyio.Event()
        self._generation = 0
        self.bound = True

    @property
    def state(self) -> Any:
        """The view: confirmed state + own private actions + pending actions, transformed."""
        return self._peer._client.transformed(self.rid, time.time())

    @property
    def confirmed(self) -> Any:
        """The state the master confirmed (no pending actions, no private overlay)."""
        return self._peer._client.replicas[self.rid].state

    @property
    def version(self) -> int:
        """How many changes the master has confirmed."""
        return self._peer._client.replicas[self.rid].version

    @property
    def checksum(self) -> str:
        """Checksum of the confirmed state (equal on every synced peer)."""
        return hexdigest(self._peer._client.replicas[self.rid].checksum)

    @property
    def subscribers(self) -> dict[str, dict[str, Any]]:
        """Bound peers: peer id -> presence info."""
        return dict(self._peer._client.replicas[self.rid].subscribers)

    @property
    def pending(self) -> int:
        """Own actions not yet confirmed."""
        return len(self._peer._client.pending(self.rid))

    def dispatch(self, action: Action) -> DispatchHandle:
        """Apply ``action`` optimistically and send it; await the handle to wait for the master."""
        return self._peer._dispatch(self.rid, action, None)

    def dispatch_private(self, private: Action, public: Action) -> DispatchHandle:
        """Everyone sees ``public``; only this peer sees ``private`` until the type reveals it."""
        return self._peer._dispatch(self.rid, public, private)

    def on_update(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(state)`` on every change of the view; returns an unsubscribe function."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    async def updates(self) -> AsyncIterator[Any]:
        """Yield the view now and after every change (changes made between reads coalesce)."""
        seen = -1
        while self.bound:
            if seen != self._generation:
                seen = self._generation
                yield self.state
                continue
            await self._changed.wait()

    async def unbind(self) -> None:
        """Stop being a subscriber; the replica stays in sync, notifications stop."""
        if self.bound:
            self.bound = False
            self._peer._unbind(self)
            self._notify()

    def _notify(self) -> None:
        self._generation += 1
        event, self._changed = self._changed, anyio.Event()
        event.set()
        if not self._callbacks or not self.bound:
            return
        state = self.state
        for callback in list(self._callbacks):
            try:
                callback(state)
            except Exception:
                log.exception("on_update callback for %s raised", self.rid)

    def __repr__(self) -> str:
        return f"<Resource {self.rid} v{self.version}>"


class Peer:
    """One peer of a room; ``async with Peer(...) as peer`` joins, leaving hands the master over."""

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
    ) -> None:
        if not room or not isinstance(room, str):
            raise ValueError("room must be a non-empty str")
        self._rng = random.Random(seed)
        self.room = room
        self.name = name or f"peer-{self._rng.getrandbits(16):04x}"
        self.id = PeerId(f"{self.name}-{uuid.UUID(int=self._rng.getrandbits(128), version=4).hex[:12]}")
        self.info = dict(info or {})
        self._secret = secret
        self._types = {t.name: t for t in types}
        if len(self._types) != len(types):
            raise ValueError("two resource types share a name")
        if transport is None:
            from .transport.lan import LanTransport

            transport = LanTransport()
        self._transport = transport
        self._election_config = election or el.ElectionConfig()
        self._handover_timeout = handover_timeout
        self._client = ClientCore(self.id, types=self._types)
        self._election = el.ElectionMachine(self.id, config=self._election_config, rng=self._rng)
        self._master: MasterCore | None = None
        self._endpoint: Endpoint | None = None
        self._tg: TaskGroup | None = None
        self._exit: Any = None
        self._outbox: dict[PeerId, list[bytes]] = {}
        self._local: deque[tuple[PeerId, wire.Message]] = deque()
        self._changed: set[Rid] = set()
        self._resources: dict[Rid, Resource] = {}
        self._handles: dict[int, DispatchHandle] = {}
        self._requests: dict[int, tuple[anyio.Event, list[fx.RequestSettled]]] = {}
        self._ready = anyio.Event()
        self._master_known = anyio.Event()
        self._master_cbs: list[Callable[[str | None, int], None]] = []
        self._peers_cbs: list[Callable[[frozenset[str]], None]] = []
        self._position: tuple[int, int] = (0, 0)
        self._closed = False
        self._failure: BaseException | None = None
        self._warned: set[tuple[PeerId, str]] = set()
        self.stats = {"frames_in": 0, "frames_out": 0, "dropped": 0, "resyncs": 0}
        self.log = logging.LoggerAdapter(log, {"peer": self.id})

    # -- properties ----------------------------------------------------------------------------

    @property
    def is_master(self) -> bool:
        """True while this peer runs the master."""
        return self._master is not None

    @property
    def master_id(self) -> str | None:
        """The current master's id, or None while none is known."""
        return self._election.master

    @property
    def term(self) -> int:
        """The current election term."""
        return int(self._election.term)

    @property
    def peers(self) -> frozenset[str]:
        """Ids of the OTHER peers with an open link now."""
        return frozenset(self._endpoint.peers) if self._endpoint is not None else frozenset()

    @property
    def ready(self) -> bool:
        """Joined, a master is known and every resource is synced with it."""
        return self._ready.is_set()

    @property
    def rids(self) -> list[str]:
        """Every resource this peer holds a replica of."""
        return list(self._client.replicas)

    def on_master_changed(self, callback: Callable[[str | None, int], None]) -> Callable[[], None]:
        """Call ``callback(master_id, term)`` whenever the master changes."""
        self._master_cbs.append(callback)
        return lambda: self._master_cbs.remove(callback) if callback in self._master_cbs else None

    def on_peers_changed(self, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(peer_ids)`` whenever a peer joins or leaves."""
        self._peers_cbs.append(callback)
        return lambda: self._peers_cbs.remove(callback) if callback in self._peers_cbs else None

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Peer:
        from contextlib import AsyncExitStack

        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._endpoint = await stack.enter_async_context(
                self._transport.connect(peer_id=self.id, name=self.name, room=self.room, secret=self._secret)
            )
            self._tg = anyio.create_task_group()
            await self._tg.__aenter__()
        except BaseException:
            await stack.aclose()
            raise
        self._exit = stack
        self._execute_election(self._election.start(anyio.current_time()))
        self._tg.start_soon(self._pump)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._failure is None and exc_info[0] is None:
                await self._hand_over()
        finally:
            self._closed = True
            self._flush()
            tg, self._tg = self._tg, None
            try:
                if tg is not None:
                    tg.cancel_scope.cancel()
                    await tg.__aexit__(None, None, None)
            finally:
                stack, self._exit = self._exit, None
                if stack is not None:
                    with anyio.CancelScope(shield=True):
                        await stack.aclose()
                self._fail_waiters(TransportError("the peer is closed"))

    async def _hand_over(self) -> None:
        if self._master is None or not self.peers:
            return
        self._execute_election(self._election.step(el.Handover(), anyio.current_time()))
        self._flush()
        with anyio.move_on_after(self._handover_timeout):
            while self._election.master == self.id:
                await anyio.sleep(0.005)

    async def wait_ready(self) -> None:
        """Wait until a master is known and this peer holds every resource it has."""
        while not self._ready.is_set():
            await self._ready.wait()
        if self._failure is not None:
            raise TransportError("the peer's transport closed") from self._failure

    # -- resources -----------------------------------------------------------------------------

    async def create(
        self, type: ResourceType | str, state: Any = None, *, id: str | None = None, exist_ok: bool = True
    ) -> str:
        """Create a resource (``state`` None: the type's initial state); return its rid.

        With ``exist_ok`` (the default) creating an existing rid keeps its state and succeeds,
        so every peer may "create" the room's shared resources at start.
        """
        type_name = type if isinstance(type, str) else type.name
        if type_name not in self._types:
            raise LocalProtocolError(f"unknown resource type {type_name!r}: pass it in types=[...]")
        rid = make_rid(type_name, id or uuid.UUID(int=self._rng.getrandbits(128), version=4).hex)
        req, effects = self._client.create(rid, state, exist_ok=exist_ok)
        await self._request(req, effects)
        return rid

    async def bind(self, rid: str) -> Resource:
        """Subscribe to ``rid`` and return it, synced with the master."""
        parse_rid(rid)
        existing = self._resources.get(Rid(rid))
        if existing is not None and existing.bound:
            return existing
        req, effects = self._client.bind(Rid(rid), self.info)
        await self._request(req, effects)
        resource = self._resources[Rid(rid)] = Resource(self, Rid(rid))
        return resource

    async def get(self, rid: str) -> Any:
        """The current view of ``rid`` without binding it."""
        if not self._client.has(Rid(rid)):
            raise ResourceNotFound(f"no resource {rid}", rid=rid)
        return self._client.transformed(Rid(rid), time.time())

    async def _request(self, req: int, effects: list[fx.Effect]) -> fx.RequestSettled:
        self._check_open()
        done = anyio.Event()
        box: list[fx.RequestSettled] = []
        self._requests[req] = (done, box)
        self._execute_resource(effects)
        self._drain()
        await done.wait()
        if not box:
            raise TransportError("the peer closed before the master answered")
        result = box[0]
        if result.error is not None:
            cls = ResourceNotFound if result.not_found else ActionRejected
            raise cls(result.error, rid=result.rid)
        return result

    def _dispatch(self, rid: Rid, action: Action, private: Action | None) -> DispatchHandle:
        self._check_open()
        seq, effects = self._client.dispatch(rid, action, private)
        handle = self._handles[seq] = DispatchHandle(rid, seq)
        self._execute_resource(effects)
        self._drain()
        return handle

    def _unbind(self, resource: Resource) -> None:
        if self._resources.get(resource.rid) is resource:
            del self._resources[resource.rid]
        if self._closed:
            return
        self._execute_resource(self._client.unbind(resource.rid))
        self._drain()

    def _check_open(self) -> None:
        if self._closed or self._failure is not None:
            raise TransportError("the peer is closed") from self._failure
        if self._endpoint is None:
            raise NotSynced("use the peer inside 'async with'")

    # -- the pump ------------------------------------------------------------------------------

    async def _pump(self) -> None:
        assert self._endpoint is not None
        try:
            while True:
                wait = self._seconds_to_deadline()
                event = None
                with anyio.move_on_after(wait):
                    event = await self._endpoint.receive()
                if event is not None:
                    self._on_transport(event)
                    # take everything already waiting before flushing, so replies batch
                    for _ in range(256):
                        with anyio.move_on_after(0):
                            event = await self._endpoint.receive()
                            self._on_transport(event)
                            continue
                        break
                self._on_deadlines()
                self._drain()
        except (anyio.EndOfStream, anyio.ClosedResourceError) as exc:
            if not self._closed:
                self.log.warning("transport closed under peer %s", self.id)
                self._failure = TransportError("the transport closed")
                self._failure.__cause__ = exc
                self._fail_waiters(self._failure)

    def _seconds_to_deadline(self) -> float:
        now = anyio.current_time()
        wait = _IDLE_WAKE
        if self._election.deadline is not None:
            wait = min(wait, self._election.deadline - now)
        if self._master is not None and self._master.deadline is not None:
            wait = min(wait, self._master.deadline - time.time())
        return max(0.0, wait)

    def _on_deadlines(self) -> None:
        now = anyio.current_time()
        deadline = self._election.deadline
        if deadline is not None and now >= deadline:
            self._execute_election(self._election.step(el.Tick(), now))
        if self._master is not None and self._master.deadline is not None:
            wall = time.time()
            if wall >= self._master.deadline:
                self._execute_resource(self._master.tick(wall))

    def _on_transport(self, event: PeerUp | PeerDown | Frame) -> None:
        match event:
            case Frame(peer=sender, data=data):
                self.stats["frames_in"] += 1
                try:
                    messages = wire.decode(data)
                except RemoteProtocolError as exc:
                    self._drop(sender, f"malformed frame: {exc}")
                    return
                for message in messages:
                    self._route(sender, message)
            case PeerUp() | PeerDown():
                self._on_links_changed(event)

    def _on_links_changed(self, event: PeerUp | PeerDown) -> None:
        assert self._endpoint is not None
        peers = frozenset(self._endpoint.peers)
        now = anyio.current_time()
        if isinstance(event, PeerDown):
            self.log.info("peer %s left (%s)", event.peer, "goodbye" if event.graceful else "declared dead")
            self._execute_election(self._election.step(el.PeerLeft(peer=event.peer, graceful=event.graceful), now))
        else:
            self.log.info("peer %s joined", event.peer)
        self._execute_election(self._election.step(el.PeersChanged(peers=peers), now))
        if self._master is not None:
            self._execute_resource(self._master.peers_changed(peers, time.time()))
        for callback in list(self._peers_cbs):
            try:
                callback(frozenset(peers))
            except Exception:
                self.log.exception("on_peers_changed callback raised")

    def _drop(self, sender: PeerId, reason: str) -> None:
        self.stats["dropped"] += 1
        key = (sender, reason[:40])
        if key not in self._warned:
            self._warned.add(key)
            self.log.warning("dropped input from %s: %s", sender, reason)

    def _route(self, sender: PeerId, message: wire.Message) -> None:
        try:
            if isinstance(message, _ELECTION_TYPES):
                self._execute_election(
                    self._election.step(el.Received(sender=sender, message=message), anyio.current_time())
                )
            elif isinstance(message, _TO_MASTER) or (
                isinstance(message, rm.Snapshot) and sender != self._client.master and self._master is not None
            ):
                self._to_master(sender, message)
            else:
                self._execute_resource(self._client.step(sender, message, time.time()))
        except MovexError as exc:
            self._drop(sender, f"{type(message).__name__}: {exc}")

    def _to_master(self, sender: PeerId, message: wire.Message) -> None:
        assert isinstance(message, rm.Create | rm.Bind | rm.Unbind | rm.Propose | rm.Restore | rm.Hello
                          | rm.SyncRequest | rm.Snapshot)
        if message.term > self._election.term:
            self._observe(Term(message.term))
            return
        if self._master is None:
            return  # not (or no longer) the master: the sender will re-send to the right one
        self._execute_resource(self._master.step(sender, message, time.time()))

    def _observe(self, term: Term) -> None:
        self._execute_election(self._election.step(el.Observed(term=term), anyio.current_time()))

    # -- effects -------------------------------------------------------------------------------

    def _execute_election(self, effects: Iterable[el.Effect]) -> None:
        for effect in effects:
            match effect:
                case el.Send(to=to, message=message):
                    self._send(to, message)
                case el.Broadcast(message=message):
                    assert self._endpoint is not None
                    for peer in self._endpoint.peers:
                        self._send(peer, message)
                case el.MasterChanged(master=master, term=term):
                    self._on_master_changed(master, term)

    def _on_master_changed(self, master: PeerId | None, term: Term) -> None:
        self.log.info("master is now %s (term %s)", master, term)
        self._ready = anyio.Event() if self._ready.is_set() else self._ready
        if master == self.id:
            assert self._endpoint is not None
            if self._master is None or self._master.term != term:
                self._master = MasterCore(
                    self.id,
                    term=term,
                    types=self._types,
                    salt=self._rng.randbytes(32),
                    index=self._client.index,
                    replicas=self._client.replicas.values(),
                    peers=frozenset(self._endpoint.peers),
                    now=time.time(),
                )
        else:
            self._master = None
        self._execute_resource(self._client.master_changed(master, term))
        for callback in list(self._master_cbs):
            try:
                callback(master, int(term))
            except Exception:
                self.log.exception("on_master_changed callback raised")

    def _execute_resource(self, effects: Iterable[fx.Effect]) -> None:
        for effect in effects:
            match effect:
                case fx.Send(to=to, message=message):
                    self._send(to, message)
                case fx.Broadcast(message=message):
                    frame = wire.encode(message)
                    assert self._endpoint is not None
                    for peer in self._endpoint.peers:
                        self._outbox.setdefault(peer, []).append(frame)
                    self._local.append((self.id, message))
                case fx.StateChanged(rid=rid):
                    self._changed.add(rid)
                case fx.ActionSettled(rid=rid, seq=seq, error=error, not_found=not_found):
                    handle = self._handles.pop(seq, None)
                    if handle is not None:
                        failure: MovexError | None = None
                        if error is not None:
                            failure = (ResourceNotFound if not_found else ActionRejected)(error, rid=rid)
                        handle._settle(failure)
                case fx.RequestSettled(req=req):
                    waiter = self._requests.pop(req, None)
                    if waiter is not None:
                        waiter[1].append(effect)
                        waiter[0].set()
                case fx.PresenceChanged(rid=rid):
                    self._changed.add(rid)
                case fx.ResyncStarted(rid=rid, reason=reason):
                    self.stats["resyncs"] += 1
                    self.log.warning("%s diverged (%s): resyncing", rid, reason)
                case fx.TermObserved(term=term):
                    self._observe(term)
                case fx.Synced():
                    self._ready.set()

    def _send(self, to: PeerId, message: wire.Message) -> None:
        if to == self.id:
            self._local.append((self.id, message))
        else:
            self._outbox.setdefault(to, []).append(wire.encode(message))

    def _drain(self) -> None:
        """Deliver local messages, then flush frames and notify changed resources."""
        for _ in range(100_000):
            if not self._local:
                break
            sender, message = self._local.popleft()
            self._route(sender, message)
        self._flush()
        position = self._client.position
        if position != self._position:
            self._position = position
            self._execute_election(
                self._election.step(el.LogPosition(term=position[0], index=position[1]), anyio.current_time())
            )
            self._flush()
        changed, self._changed = self._changed, set()
        for rid in changed:
            resource = self._resources.get(rid)
            if resource is not None:
                resource._notify()

    def _flush(self) -> None:
        if not self._outbox or self._endpoint is None:
            return
        outbox, self._outbox = self._outbox, {}
        for peer, frames in outbox.items():
            data = frames[0] if len(frames) == 1 else wire.join(frames)
            try:
                self._endpoint.send(peer, data)
                self.stats["frames_out"] += 1
            except ChannelClosed:
                pass  # the link went down meanwhile; the election and resync take it from here
            except TransportError as exc:
                self.log.warning("sending to %s failed: %s", peer, exc)

    def _fail_waiters(self, error: MovexError) -> None:
        for handle in self._handles.values():
            handle._settle(error)
        self._handles.clear()
        for done, _ in self._requests.values():
            done.set()
        self._requests.clear()
        self._ready.set()

    def __repr__(self) -> str:
        role = "master" if self.is_master else "client"
        return f"<Peer {self.id} {role} term={self.term} peers={len(self.peers)}>"

