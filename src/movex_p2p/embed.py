"""Run a ``Peer`` on a background thread so a synchronous game loop can use it.

``start_peer(...)`` returns an :class:`EmbeddedPeer`; ``with`` it, the peer runs on its own
event loop in a background thread (anyio's blocking portal) while the game loop stays plain
synchronous code::

    with start_peer(room="lan-party", types=[Counter]) as peer:
        res = peer.bind(peer.create(Counter, {"count": 0}, id="c1"))
        while running:
            res.dispatch(mx.Action("increment"))   # never blocks the frame
            state = res.state                      # latest snapshot, safe to read
            for state in res.poll(): ...           # changes since the last call
            for event in peer.poll(): ...          # joins, leaves, diagnostics...; runs callbacks here

Threading rules: the network thread only appends to bounded deques and swaps immutable
snapshot references; the caller's thread reads them. Callbacks registered here run on the
caller's thread inside :meth:`EmbeddedPeer.poll` (or its older name ``poll_events``), never on
the network thread, so a stalled game loop never stalls the network (where the master may live).

Peers sharing one in-process ``LocalNetwork`` must share one event loop (memory streams are
bound to their loop): ``start_peer`` does that by itself, one runtime per network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar, assert_never

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .callbacks import Callbacks
from .errors import ActionRejected, InvalidState, ResourceNotFound, TransportError
from .events import Diagnostic, EventStream, PeerEvent
from .ids import Rid
from .node import Peer, Resource
from .nodecore import MasterChanged, PeerJoined, PeerLeft, PeersChanged
from .presence import PeerInfo, Role
from .resource.effects import ResourceRemoved
from .resource.state import check_data
from .resource.types import Action, ResourceType
from .resource.values import has_master_values
from .transport.base import Transport
from .transport.memory import LocalNetwork

__all__ = [
    "Diagnostic",
    "EmbeddedPeer",
    "EmbeddedResource",
    "MasterChanged",
    "PeerEvent",
    "PeerJoined",
    "PeerLeft",
    "PeersChanged",
    "ResourceRemoved",
    "start_peer",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

POLL_LIMIT: Final = 1024
"""Most states (or events) kept for a caller that does not poll; older ones are dropped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Snapshot:
    state: Any
    view: Any  # untransformed: what the next dispatch applies to
    version: int
    checksum: str
    subscribers: dict[str, dict[str, Any]]
    pending: int


class _Runtime:
    """One event loop on one background thread, shared by the peers of one in-process network."""

    def __init__(self) -> None:
        self._cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self.portal = self._cm.__enter__()
        self.users = 0

    def close(self) -> None:
        try:
            self.portal.call(self.portal.stop, True)
        except RuntimeError:
            pass  # the loop already ended (a task broke it); joining the thread below still works
        try:
            self._cm.__exit__(None, None, None)  # joins the thread
        except Exception:
            log.exception("the embedded event loop ended with an error")


_shared_lock = threading.Lock()
_shared: dict[int, _Runtime] = {}


def _acquire_runtime(transport: Transport | None) -> _Runtime:
    if not isinstance(transport, LocalNetwork):
        runtime = _Runtime()
        runtime.users = 1
        return runtime
    with _shared_lock:
        shared = _shared.get(id(transport))
        if shared is None:
            shared = _shared[id(transport)] = _Runtime()
        shared.users += 1
        return shared


def _release_runtime(transport: Transport | None, runtime: _Runtime) -> None:
    with _shared_lock:
        runtime.users -= 1
        if runtime.users > 0:
            return
        if _shared.get(id(transport)) is runtime:
            del _shared[id(transport)]
    runtime.close()


class EmbeddedResource:
    """A bound resource usable from any thread: dispatch never blocks, reads are snapshots."""

    def __init__(self, owner: EmbeddedPeer, resource: Resource, type_: ResourceType) -> None:
        self._owner = owner
        self._resource = resource  # touched on the network thread only
        self._type = type_
        self.rid: str = resource.rid
        self._updates: deque[Any] = deque(maxlen=POLL_LIMIT)
        self._removed_cbs: Callbacks[[]] = Callbacks(f"on_removed of {self.rid}")
        self._removed = False
        self._snapshot = self._take_snapshot()

    def _take_snapshot(self, state: Any = None, *, have_state: bool = False) -> _Snapshot:
        res = self._resource
        return _Snapshot(
            state=state if have_state else res.state,
            view=res._client.view(res.rid),
            version=res.version,
            checksum=res.checksum,
            subscribers=res.subscribers,
            pending=res.pending,
        )

    def _on_update(self, state: Any) -> None:  # network thread
        self._snapshot = self._take_snapshot(state, have_state=True)
        self._updates.append(state)

    def _on_removed(self) -> None:  # network thread
        self._removed = True

    @property
    def removed(self) -> bool:
        """True once the resource was removed from the room (its last snapshot stays readable)."""
        return self._removed

    def on_removed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` from :meth:`EmbeddedPeer.poll` once the resource is removed."""
        return self._removed_cbs.add(callback)

    @property
    def state(self) -> Any:
        """The latest view (confirmed + pending), as of the last change; treat it as read-only."""
        return self._snapshot.state

    @property
    def version(self) -> int:
        """How many changes the master had confirmed at the last change."""
        return self._snapshot.version

    @property
    def checksum(self) -> str:
        """Checksum of the confirmed state at the last change."""
        return self._snapshot.checksum

    @property
    def subscribers(self) -> dict[str, dict[str, Any]]:
        """Bound peers (peer id -> presence info) at the last change."""
        return dict(self._snapshot.subscribers)

    @property
    def pending(self) -> int:
        """Own actions not yet confirmed, at the last change."""
        return self._snapshot.pending

    def poll(self) -> list[Any]:
        """Every view since the last call, oldest first (at most ``POLL_LIMIT`` are kept)."""
        return _take_all(self._updates)

    def dispatch(self, action: Action) -> concurrent.futures.Future[None]:
        """Send ``action`` without blocking; the future settles when the master confirms it.

        The future raises ``ActionRejected`` if the master refused the action, and
        ``TransportError`` if the peer closed first. Ignoring it is fine. Mistakes raise here,
        on your thread: ``InvalidState`` for a payload that is not JSON-like data,
        ``ActionRejected`` for a reducer that returns None or data that is not JSON-like,
        ``ResourceNotFound`` once the resource was removed.
        """
        self._check(action, None)
        return self._owner._submit(self._dispatch, action, None)

    def dispatch_private(self, private: Action, public: Action) -> concurrent.futures.Future[None]:
        """Everyone sees ``public``; only this peer sees ``private`` until the type reveals it."""
        self._check(public, private)
        return self._owner._submit(self._dispatch, public, private)

    def _check(self, public: Action, private: Action | None) -> None:
        """What can be known on the caller's thread: the payloads, and the reducer's contract on the last view."""
        if self._removed:
            raise ResourceNotFound(f"{self.rid} was removed", rid=self.rid)
        parts = [public] if private is None else [public, private]
        for part in parts:
            if not isinstance(part, Action):
                raise TypeError(f"expected an mx.Action, not {type(part).__name__}")
            check_data(part.payload, where=f"{part.type} payload")
        if any(has_master_values(part.payload) for part in parts):
            return  # the master resolves those first: nothing to predict here
        state = self._snapshot.view
        for part in parts:
            part = part.by(self._owner.id)
            try:
                result = self._type.reducer(state, part)  # as the network thread will
            except InvalidState as exc:  # it changed its input (a frozen state refuses): the app's bug
                raise ActionRejected(str(exc), rid=self.rid) from None
            except Exception:
                continue  # the app's reducer: the master decides (it may see another state)
            try:
                state = self._type.checked(state, result, part)
            except InvalidState as exc:
                raise ActionRejected(str(exc), rid=self.rid) from None

    async def _dispatch(self, public: Action, private: Action | None) -> None:
        if private is None:
            handle = self._resource.dispatch(public)
        else:
            handle = self._resource.dispatch_private(private, public)
        await handle

    def unbind(self) -> None:
        """Stop being a subscriber (blocks until done)."""
        self._owner._call(self._resource.unbind)

    def __repr__(self) -> str:
        return f"<EmbeddedResource {self.rid} v{self.version}>"


class EmbeddedPeer:
    """A ``Peer`` running on a background thread; use it as a context manager."""

    def __init__(
        self,
        *,
        room: str,
        types: Sequence[ResourceType],
        name: str | None = None,
        info: dict[str, Any] | None = None,
        secret: str | None = None,
        transport: Transport | None = None,
        ready_timeout: float | None = 30.0,
        call_timeout: float | None = 30.0,
        close_timeout: float = 5.0,
        role: Role = "player",
        **peer_kwargs: Any,
    ) -> None:
        self._peer_args: dict[str, Any] = dict(
            room=room, types=types, name=name, info=info, secret=secret, transport=transport, role=role, **peer_kwargs
        )
        self._types = {t.name: t for t in types}
        self.role: Role = role
        self._transport = transport
        self._ready_timeout = ready_timeout
        self.call_timeout = call_timeout
        self._close_timeout = close_timeout
        self._runtime: _Runtime | None = None
        self._peer: Peer | None = None
        self._stop: anyio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: TaskGroup | None = None  # dispatches waiting for the master; network thread only
        self._done: concurrent.futures.Future[None] | None = None
        self._events: deque[PeerEvent] = deque(maxlen=POLL_LIMIT)
        self._stream = EventStream()  # the caller's thread: poll() publishes, callbacks raise there
        self._master: tuple[str | None, int] = (None, 0)
        self._peers: frozenset[str] = frozenset()
        self._members: dict[str, PeerInfo] = {}
        self._resources: list[EmbeddedResource] = []
        self._by_rid: dict[str, list[EmbeddedResource]] = {}
        self.id = ""
        """The peer's id (``Peer.id``): unique in the room; set on entering ``with`` ("" before)."""
        self.name = ""
        """The peer's display name (``Peer.name``, the ``name=`` given or a random one); set on entering ``with``."""

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> EmbeddedPeer:
        if self._runtime is not None:
            raise RuntimeError("this EmbeddedPeer is already running")
        self._runtime = _acquire_runtime(self._transport)
        try:
            self._done, peer = self._runtime.portal.start_task(self._run)
            self._peer = peer
            self.id, self.name = peer.id, peer.name
            if self._ready_timeout is not None:
                self._call(peer.wait_ready, timeout=self._ready_timeout)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Leave the room (handing the master over) and join the background thread. Idempotent."""
        runtime, self._runtime = self._runtime, None
        if runtime is None:
            return
        try:
            done, stop = self._done, self._stop
            if done is not None and stop is not None and not done.done():
                try:
                    runtime.portal.call(stop.set)
                    done.result(timeout=self._close_timeout)
                except (concurrent.futures.TimeoutError, RuntimeError):
                    done.cancel()
                except Exception:
                    log.warning("the embedded peer %s failed while closing", self.id, exc_info=True)
        finally:
            _release_runtime(self._transport, runtime)

    async def _run(self, *, task_status: TaskStatus[Peer]) -> None:
        self._stop = anyio.Event()
        self._loop = asyncio.get_running_loop()
        async with Peer(**self._peer_args) as peer, anyio.create_task_group() as tasks:
            peer.on_event(self._record)
            self._master = (peer.master_id, peer.term)
            self._peers = peer.peers
            self._members = peer.members
            self._tasks = tasks
            task_status.started(peer)
            await self._stop.wait()
            self._tasks = None
            tasks.cancel_scope.cancel()  # their futures raise TransportError: the peer closed first

    # -- network-thread callbacks: record only -------------------------------------------------

    def _record(self, event: PeerEvent) -> None:
        match event:
            case MasterChanged(master=master, term=term):
                self._master = (master, term)
            case PeersChanged(peers=peers):
                self._peers = frozenset(peers)
            case PeerJoined(info=info):
                self._members = {**self._members, info.id: info}
            case PeerLeft(info=info):
                self._members = {k: v for k, v in self._members.items() if k != info.id}
            case ResourceRemoved():
                return  # told by the bound resource's on_removed (below), for resources bound here
            case Diagnostic():
                pass
            case _:
                assert_never(event)
        self._events.append(event)

    def _on_resource_removed(self, embedded: EmbeddedResource) -> None:
        embedded._on_removed()
        self._events.append(ResourceRemoved(rid=Rid(embedded.rid)))

    # -- calls into the loop -------------------------------------------------------------------

    def _portal(self) -> BlockingPortal:
        if self._runtime is None:
            raise TransportError("the embedded peer is not running (use it inside 'with')")
        return self._runtime.portal

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None) -> T:
        limit = self.call_timeout if timeout is None else timeout

        async def bounded() -> T:
            with anyio.fail_after(limit):
                return await fn(*args)

        return self._portal().call(bounded)

    def _submit(self, fn: Callable[..., Awaitable[None]], *args: Any) -> concurrent.futures.Future[None]:
        """Run ``fn(*args)`` on the network loop; never waits for it (``BlockingPortal.start_task_soon`` does)."""
        self._portal()
        loop = self._loop
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            if loop is None:
                raise RuntimeError("no loop")
            loop.call_soon_threadsafe(self._spawn, fn, args, future)
        except RuntimeError as exc:  # the loop is closed
            raise TransportError("the embedded peer is not running (use it inside 'with')") from exc
        return future

    def _spawn(
        self, fn: Callable[..., Awaitable[None]], args: tuple[Any, ...], future: concurrent.futures.Future[None]
    ) -> None:
        """Network thread: start a task that settles ``future`` with ``fn(*args)``."""
        if self._tasks is None:
            if future.set_running_or_notify_cancel():
                future.set_exception(TransportError("the embedded peer closed first"))
            return
        self._tasks.start_soon(self._settle, fn, args, future)

    @staticmethod
    async def _settle(
        fn: Callable[..., Awaitable[None]], args: tuple[Any, ...], future: concurrent.futures.Future[None]
    ) -> None:
        if not future.set_running_or_notify_cancel():
            return  # the caller cancelled it first
        try:
            await fn(*args)
        except Exception as exc:  # the caller's future carries it (ActionRejected, TransportError...)
            future.set_exception(exc)
        except BaseException:  # cancelled: the peer closed first
            future.set_exception(TransportError("the embedded peer closed first"))
            raise
        else:
            future.set_result(None)

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None) -> T:
        """Run ``await fn(*args)`` on the network loop and return its result (blocks)."""
        return self._call(fn, *args, timeout=timeout)

    def run_in_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the plain function ``fn(*args)`` on the network thread (e.g. ``FaultyNetwork.kill``)."""
        return self._portal().call(fn, *args)

    # -- the peer's API, blocking versions -----------------------------------------------------

    @property
    def peer(self) -> Peer:
        """The underlying async ``Peer``: use it only from the network loop (see :meth:`call`)."""
        if self._peer is None:
            raise TransportError("the embedded peer is not running (use it inside 'with')")
        return self._peer

    def create(
        self, type: ResourceType | str, state: Any = None, *, id: str | None = None, exist_ok: bool = True
    ) -> str:
        """Create a resource and return its rid (blocks until the master answered)."""
        peer = self.peer

        async def create() -> str:
            return await peer.create(type, state, id=id, exist_ok=exist_ok)

        return self._call(create)

    def bind(self, rid: str) -> EmbeddedResource:
        """Subscribe to ``rid`` and return it, synced with the master (blocks)."""
        peer = self.peer

        async def bind() -> EmbeddedResource:
            resource = await peer.bind(rid)
            embedded = EmbeddedResource(self, resource, self._types[rid.partition(":")[0]])
            resource.on_update(embedded._on_update)
            resource.on_removed(lambda: self._on_resource_removed(embedded))
            return embedded

        embedded = self._call(bind)
        self._resources.append(embedded)
        self._by_rid.setdefault(embedded.rid, []).append(embedded)
        return embedded

    def remove(self, rid: str) -> None:
        """Delete ``rid`` everywhere (blocks until the master did): ``ResourceNotFound`` if there is none."""
        self._call(self.peer.remove, rid)

    def resources(self, type: ResourceType | str | None = None) -> list[str]:
        """The rids of the room's resources (of ``type`` only), of the types this peer has (blocks briefly)."""
        return self.run_in_loop(self.peer.resources, type)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until a master is known and every resource is synced."""
        self._call(self.peer.wait_ready, timeout=timeout)

    @property
    def is_master(self) -> bool:
        """True while this peer runs the master."""
        return self._master[0] is not None and self._master[0] == self.id

    @property
    def master_id(self) -> str | None:
        """The current master's id (None while none is known)."""
        return self._master[0]

    @property
    def term(self) -> int:
        """The current election term."""
        return self._master[1]

    @property
    def peers(self) -> frozenset[str]:
        """Ids of the OTHER peers in the room."""
        return self._peers

    @property
    def members(self) -> dict[str, PeerInfo]:
        """Every peer in the room, this one included (id -> ``mx.PeerInfo``), as of the last join or leave."""
        return dict(self._members)

    @property
    def running(self) -> bool:
        """True while the background peer runs."""
        return self._done is not None and not self._done.done() and self._runtime is not None

    # -- events on the caller's thread ---------------------------------------------------------

    def on_master_changed(self, callback: Callable[[str | None, int], None]) -> Callable[[], None]:
        """Call ``callback(master_id, term)`` from :meth:`poll_events` after each master change."""
        return self._stream.on_master_changed(callback)

    def on_peers_changed(self, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(peer_ids)`` from :meth:`poll` after each link change."""
        return self._stream.on_peers_changed(callback)

    def on_peer_joined(self, callback: Callable[[PeerInfo], None]) -> Callable[[], None]:
        """Call ``callback(info)`` from :meth:`poll` when a peer joins the room."""
        return self._stream.on_peer_joined(callback)

    def on_peer_left(self, callback: Callable[[PeerInfo, str], None]) -> Callable[[], None]:
        """Call ``callback(info, reason)`` from :meth:`poll` when a peer leaves (``"left"`` or ``"lost"``)."""
        return self._stream.on_peer_left(callback)

    def on_diagnostic(self, callback: Callable[[Diagnostic], None]) -> Callable[[], None]:
        """Call ``callback(diagnostic)`` from :meth:`poll` for each ``mx.Diagnostic``."""
        return self._stream.on_diagnostic(callback)

    def poll(self) -> list[PeerEvent]:
        """Take the events since the last call (master and membership changes, joins and leaves,
        diagnostics, removed resources) and run their callbacks here, on the caller's thread."""
        events = _take_all(self._events)
        for event in events:
            if isinstance(event, ResourceRemoved):
                for embedded in self._by_rid.pop(event.rid, []):
                    embedded._removed_cbs()
            self._stream.publish(event)
        return events

    poll_events = poll
    """The older name of :meth:`poll`."""

    def __repr__(self) -> str:
        role = "master" if self.is_master else "client"
        return f"<EmbeddedPeer {self.id or '?'} {role} term={self.term}>"


def start_peer(
    *,
    room: str,
    types: Sequence[ResourceType],
    name: str | None = None,
    info: dict[str, Any] | None = None,
    secret: str | None = None,
    transport: Transport | None = None,
    **peer_kwargs: Any,
) -> EmbeddedPeer:
    """A ``Peer`` for synchronous code: ``with start_peer(...) as peer:`` runs it on a thread.

    Entering waits until the peer is ready (``ready_timeout=30.0``, None: don't wait; it raises
    ``mx.AuthenticationFailed`` if every member refused our secret); blocking calls give up
    after ``call_timeout=30.0`` seconds; other keyword arguments go to ``Peer`` (``role=``,
    ``identity=``, ``election=``, ``seed=``, ``handover_timeout=``).
    """
    return EmbeddedPeer(room=room, types=types, name=name, info=info, secret=secret, transport=transport, **peer_kwargs)


def _take_all(queue: deque[T]) -> list[T]:
    """Empty ``queue`` (appended to by the network thread) into a list, oldest first."""
    out: list[T] = []
    while True:
        try:
            out.append(queue.popleft())
        except IndexError:
            return out
