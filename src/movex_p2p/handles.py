"""What the app holds of the room's resources: ``Resource`` (bound), its ``DispatchHandle``s, ``ResourceInfo``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .callbacks import Callbacks
from .errors import MovexError, ResourceNotFound
from .ids import Rid
from .resource.client import is_opaque
from .resource.replica import Replica
from .resource.state import hexdigest
from .resource.types import Action

if TYPE_CHECKING:
    from .node import Peer

__all__ = ["DispatchHandle", "Resource", "ResourceInfo"]


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

    @classmethod
    def of(cls, replica: Replica) -> ResourceInfo:
        """What ``replica`` holds, as a ResourceInfo."""
        return cls(
            rid=replica.rid,
            version=replica.version,
            checksum=hexdigest(replica.checksum),
            subscribers={k: dict(v) for k, v in replica.subscribers.items()},
            state=replica.state,
            opaque=is_opaque(replica.type),
        )


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
        """Wait for the master; raise ActionRejected if it refused the action (its ``__cause__``: what the
        app's reducer raised on this peer's view at the dispatch, if it did)."""
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
        return self._client.transformed(self.rid, time.monotonic())  # the clock the node steps with

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
