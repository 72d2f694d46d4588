"""The one stream of what happens to a peer's room: ``PeerEvent`` values, and the adapters on it.

A peer publishes each event once to its :class:`EventStream`; the ``on_*`` callbacks, the
``events()`` async iterators and ``EmbeddedPeer.poll`` all read that one stream.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import anyio

from .callbacks import Callbacks
from .nodecore import MasterChanged, PeerJoined, PeerLeft, PeersChanged
from .presence import PeerInfo
from .resource.effects import ResourceRemoved

__all__ = ["READER_LIMIT", "Diagnostic", "EventReader", "EventStream", "PeerEvent"]

READER_LIMIT: Final = 1024
"""Events an ``events()`` iterator keeps for a reader that falls behind; older ones are dropped."""

E = TypeVar("E")


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
    - ``"lost"``: own actions on ``rid`` (``reason`` names their seqs) that a deposed master confirmed
      are not in the new master's log (the other side of a split won), and were confirmed too long
      ago to be kept here and sent again: they are gone (their handles had settled as confirmed).
    - ``"censored"``: the master ``peer`` left another player's signed action on ``rid`` unconfirmed
      (``reason`` names the author and seq) although this peer handed it over and the master kept
      confirming others' actions there; by default this peer no longer follows or votes for it.
    - ``"forked"``: the master ``peer`` was caught forging (an action its author never signed, a
      reveal that breaks its commitment, or two different histories sealed for one log index); it
      is not followed any more.
    - ``"app_error"``: the app's ``can_reveal``, its reducer revealing a private action, its
      ``on_unrevealed`` or its ``on_deadline`` raised on ``rid`` (``reason`` says what): no reveal,
      that private half dropped, or the state left as it was.
    - ``"private_lost"``: own private actions on ``rid`` were never revealed (this process lacks
      them after a restart, or they reached the master ``peer`` too late); ``on_unrevealed`` ran.
    - ``"forged"``: the player ``peer`` opened its sealed private action on ``rid`` with something
      it had not committed to; it counts as never revealed (``on_unrevealed`` ran).
    - ``"duplicate_identity"``: another process joined the room with this peer's own identity (one
      identity file used twice). The one that came later takes the links (the others hold one link
      per id); the earlier one is out of the room and steps aside for good: it stops being master,
      never campaigns or votes again, and its ``dispatch``/``create``/``remove`` raise
      :class:`ActionRejected`. Both are told (``reason`` says which one this is).
    - ``"draw_missing"``: a fair draw on ``rid`` was fixed without some players' elements (``reason``
      names them; the master ``peer`` says they did not answer in time): visible, and the room goes on.
    - ``"fault"``: a bug in movex_p2p (``detail`` holds the traceback; please report it).
    """

    kind: str
    peer: str | None
    reason: str
    rid: str | None = None
    detail: str = ""


PeerEvent = MasterChanged | PeersChanged | PeerJoined | PeerLeft | Diagnostic | ResourceRemoved
"""What ``Peer.events()`` yields and ``EmbeddedPeer.poll`` returns, in the order it happened."""


class EventReader:
    """An async iterator over a stream's events from its creation on; it ends once the stream closes."""

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream
        self._queue: deque[PeerEvent] = deque(maxlen=READER_LIMIT)
        self._more = anyio.Event()

    def _put(self, event: PeerEvent) -> None:
        self._queue.append(event)
        self._more.set()

    def __aiter__(self) -> EventReader:
        return self

    async def __anext__(self) -> PeerEvent:
        while not self._queue:
            if self._stream.closed:
                raise StopAsyncIteration
            self._more = anyio.Event()
            await self._more.wait()
        return self._queue.popleft()


class EventStream:
    """One stream of PeerEvents: ``publish`` hands each to every callback and reader, in order.

    With a ``log``, a callback that raises is logged there and the others still run (callbacks
    on the network's loop must not break it); without one, the exception propagates (callbacks
    run on the app's own thread, e.g. in ``EmbeddedPeer.poll``).
    """

    def __init__(self, *, log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self._callbacks: Callbacks[[PeerEvent]] = Callbacks("event", log=log)
        self._readers: weakref.WeakSet[EventReader] = weakref.WeakSet()  # an abandoned reader goes away
        self.closed = False

    def publish(self, event: PeerEvent) -> None:
        """Hand ``event`` to the callbacks, then queue it for every reader."""
        if self._callbacks.registered:
            self._callbacks(event)
        for reader in list(self._readers):
            reader._put(event)

    def reader(self) -> EventReader:
        """A new async iterator over the events from now on."""
        reader = EventReader(self)
        if not self.closed:
            self._readers.add(reader)
        return reader

    def close(self) -> None:
        """No more events: readers end once they have read what they hold."""
        self.closed = True
        for reader in list(self._readers):
            reader._more.set()
        self._readers.clear()

    # -- callback adapters (each returns an unsubscribe function) ------------------------------

    def on_event(self, callback: Callable[[PeerEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event."""
        return self._callbacks.add(callback)

    def _on(self, kind: type[E], callback: Callable[[E], None]) -> Callable[[], None]:
        def adapter(event: PeerEvent) -> None:
            if isinstance(event, kind):
                callback(event)

        return self._callbacks.add(adapter)

    def on_master_changed(self, callback: Callable[[str | None, int], None]) -> Callable[[], None]:
        """Call ``callback(master_id, term)`` on each :class:`MasterChanged`."""
        return self._on(MasterChanged, lambda e: callback(e.master, e.term))

    def on_peers_changed(self, callback: Callable[[frozenset[str]], None]) -> Callable[[], None]:
        """Call ``callback(peer_ids)`` on each :class:`PeersChanged`."""
        return self._on(PeersChanged, lambda e: callback(e.peers))

    def on_peer_joined(self, callback: Callable[[PeerInfo], None]) -> Callable[[], None]:
        """Call ``callback(info)`` on each :class:`PeerJoined`."""
        return self._on(PeerJoined, lambda e: callback(e.info))

    def on_peer_left(self, callback: Callable[[PeerInfo, str], None]) -> Callable[[], None]:
        """Call ``callback(info, reason)`` on each :class:`PeerLeft`."""
        return self._on(PeerLeft, lambda e: callback(e.info, e.reason))

    def on_diagnostic(self, callback: Callable[[Diagnostic], None]) -> Callable[[], None]:
        """Call ``callback(diagnostic)`` on each :class:`Diagnostic`."""
        return self._on(Diagnostic, callback)

    def on_resource_removed(self, callback: Callable[[ResourceRemoved], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on each :class:`ResourceRemoved`."""
        return self._on(ResourceRemoved, callback)
