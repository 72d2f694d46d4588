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
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup

from . import wire
from .election import machine as el
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
from .ids import PeerId, Rid
from .nodecore import NodeCore
from .resource import effects as fx
from .resource.client import ClientCore
from .resource.state import hexdigest
from .resource.types import Action, ResourceType, make_rid, parse_rid
from .transport.base import Endpoint, Frame, PeerDown, PeerUp, Transport, TransportEvent

__all__ = ["DispatchHandle", "Peer", "Resource"]

log = logging.getLogger(__name__)

_TICK: Final = 0.01  # seconds: the longest the timers go unchecked (deadlines may move while we sleep)


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
        self._waiting = 0
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
            self._waiting += 1
            try:
                await self._changed.wait()
            finally:
                self._waiting -= 1

    async def unbind(self) -> None:
        """Stop being a subscriber; the replica stays in sync, notifications stop."""
        if self.bound:
            self.bound = False
            self._peer._unbind(self)
            self._notify()

    def _notify(self) -> None:
        self._generation += 1
        if self._waiting:  # an Event per change costs; make one only when updates() waits
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
        rng = random.Random(seed)
        self.room = room
        self.name = name or f"peer-{rng.getrandbits(16):04x}"
        self.id = PeerId(f"{self.name}-{uuid.UUID(int=rng.getrandbits(128), version=4).hex[:12]}")
        self.info = dict(info or {})
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
        self._core = NodeCore(self.id, types=types_by_name, election=election or el.ElectionConfig(), rng=rng)
        self._client: ClientCore = self._core.client
        self._endpoint: Endpoint | None = None
        self._tg: TaskGroup | None = None
        self._exit: Any = None
        self._resources: dict[Rid, Resource] = {}
        self._handles: dict[tuple[Rid, int], DispatchHandle] = {}
        self._requests: dict[int, tuple[anyio.Event, list[fx.RequestSettled]]] = {}
        self._ready = anyio.Event()
        self._master_change = anyio.Event()
        self._flush_soon = anyio.Event()
        self._master_cbs: list[Callable[[str | None, int], None]] = []
        self._peers_cbs: list[Callable[[frozenset[str]], None]] = []
        self._closed = False
        self._failure: BaseException | None = None
        self._warned: set[tuple[PeerId, str]] = set()
        self.stats = {"frames_in": 0, "frames_out": 0, "dropped": 0, "resyncs": 0, "rebased": 0}
        self.log = logging.LoggerAdapter(log, {"peer": self.id})

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
        self._core.start(anyio.current_time(), time.time())
        self._after()
        self._tg.start_soon(self._pump)
        self._tg.start_soon(self._ticker)
        self._tg.start_soon(self._flusher)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._failure is None and exc_info[0] is None:
                await self._hand_over()
        finally:
            self._closed = True
            tg, self._tg = self._tg, None
            try:
                if tg is not None:
                    tg.cancel_scope.cancel()
                    await tg.__aexit__(None, None, None)
            finally:
                stack, self._exit = self._exit, None
                if stack is not None:
                    # not under a shield of ours: the transport owns a task group opened before
                    # it, and it shields its own goodbye
                    await stack.aclose()
                self._fail_waiters(TransportError("the peer is closed"))

    async def _hand_over(self) -> None:
        if not self.is_master or not self.peers:
            return
        self._core.hand_over(anyio.current_time(), time.time())
        self._after()
        with anyio.move_on_after(self._handover_timeout):
            while self._core.election.master == self.id:
                await self._master_change.wait()

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
        if type_name not in self._core.types:
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
        self._command(effects)
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
        handle = self._handles[(rid, seq)] = DispatchHandle(rid, seq)
        self._command(effects)
        return handle

    def _unbind(self, resource: Resource) -> None:
        if self._resources.get(resource.rid) is resource:
            del self._resources[resource.rid]
        if not self._closed:
            self._command(self._client.unbind(resource.rid))

    def _command(self, effects: list[fx.Effect]) -> None:
        self._core.resource_effects(effects)
        self._core.drain()
        self._notify()  # a master confirms its own actions at once
        if self._core.outbox:  # frames leave at the next loop turn, so a burst is one frame per peer
            self._flush_soon.set()

    async def _flusher(self) -> None:
        while True:
            await self._flush_soon.wait()
            self._flush_soon = anyio.Event()
            self._flush()

    def _check_open(self) -> None:
        if self._closed or self._failure is not None:
            raise TransportError("the peer is closed") from self._failure
        if self._endpoint is None:
            raise NotSynced("use the peer inside 'async with'")

    # -- the pump ------------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Feed transport events to the core; replies to what is already waiting leave batched."""
        assert self._endpoint is not None
        receive_nowait: Callable[[], TransportEvent] | None = getattr(self._endpoint, "receive_nowait", None)
        try:
            while True:
                self._on_transport(await self._endpoint.receive())
                if receive_nowait is not None:
                    for _ in range(256):
                        try:
                            self._on_transport(receive_nowait())
                        except anyio.WouldBlock:
                            break
                self._after()
        except (anyio.EndOfStream, anyio.ClosedResourceError) as exc:
            if not self._closed:
                self.log.warning("transport closed under peer %s", self.id)
                self._failure = TransportError("the transport closed")
                self._failure.__cause__ = exc
                self._fail_waiters(self._failure)

    async def _ticker(self) -> None:
        """Fire the cores' timers (no cancel scope per received frame: this task sleeps instead)."""
        while True:
            wait = self._core.seconds_to_deadline(anyio.current_time(), time.time())
            await anyio.sleep(_TICK if wait is None else min(wait, _TICK))
            self._core.tick(anyio.current_time(), time.time())
            self._after()

    def _on_transport(self, event: PeerUp | PeerDown | Frame) -> None:
        assert self._endpoint is not None
        now, wall = anyio.current_time(), time.time()
        match event:
            case Frame(peer=sender, data=data):
                self.stats["frames_in"] += 1
                try:
                    messages = wire.decode(data)
                except RemoteProtocolError as exc:
                    self._warn_drop(sender, f"malformed frame: {exc}")
                    return
                self._core.receive(sender, messages, now, wall)
            case PeerUp(peer=peer):
                self.log.info("peer %s joined", peer)
                self._core.links_changed(frozenset(self._endpoint.peers), now, wall)
                self._peers_changed()
            case PeerDown(peer=peer, graceful=graceful):
                self.log.info("peer %s left (%s)", peer, "goodbye" if graceful else "declared dead")
                self._core.links_changed(frozenset(self._endpoint.peers), now, wall, left=peer, graceful=graceful)
                self._peers_changed()

    def _peers_changed(self) -> None:
        peers = self.peers
        for callback in list(self._peers_cbs):
            try:
                callback(peers)
            except Exception:
                self.log.exception("on_peers_changed callback raised")

    def _warn_drop(self, sender: PeerId, reason: str) -> None:
        self.stats["dropped"] += 1
        key = (sender, reason[:40])
        if key not in self._warned:
            self._warned.add(key)
            self.log.warning("dropped input from %s: %s", sender, reason)

    # -- after every input: send, then notify --------------------------------------------------

    def _after(self) -> None:
        for sender, reason in self._core.dropped:
            self._warn_drop(sender, reason)
        self._core.dropped.clear()
        self._flush()
        self._notify()

    def _notify(self) -> None:
        """Settle handles and requests, tell bound resources and callbacks what changed."""
        changed: set[Rid] = set()
        for event in self._core.take_events():
            self._on_event(event, changed)
        for rid in changed:
            resource = self._resources.get(rid)
            if resource is not None:
                resource._notify()

    def _flush(self) -> None:
        outbox = self._core.take_outbox()
        if not outbox or self._endpoint is None:
            return
        encoded: dict[int, bytes] = {}  # a broadcast message is encoded once for every peer
        for peer, messages in outbox.items():
            frames = []
            for message in messages:
                frame = encoded.get(id(message))
                if frame is None:
                    frame = encoded[id(message)] = wire.encode(message)
                frames.append(frame)
            try:
                self._endpoint.send(peer, frames[0] if len(frames) == 1 else wire.join(frames))
                self.stats["frames_out"] += 1
            except ChannelClosed:
                pass  # the link went down meanwhile; the election and resync take it from here
            except TransportError as exc:
                self.log.warning("sending to %s failed: %s", peer, exc)

    def _on_event(self, event: Any, changed: set[Rid]) -> None:
        match event:
            case fx.StateChanged(rid=rid) | fx.PresenceChanged(rid=rid):
                changed.add(rid)
            case fx.ActionSettled(rid=rid, seq=seq, error=error, not_found=not_found):
                handle = self._handles.pop((rid, seq), None)
                if handle is not None:
                    failure: MovexError | None = None
                    if error is not None:
                        failure = (ResourceNotFound if not_found else ActionRejected)(error, rid=rid)
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
                self.log.warning("%s diverged (%s): resyncing", rid, reason)
            case fx.Synced():
                self._ready.set()
            case el.MasterChanged(master=master, term=term):
                self.log.info("master is now %s (term %s)", master, term)
                if self._ready.is_set():
                    self._ready = anyio.Event()
                self._master_change.set()
                self._master_change = anyio.Event()
                for callback in list(self._master_cbs):
                    try:
                        callback(master, int(term))
                    except Exception:
                        self.log.exception("on_master_changed callback raised")

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
