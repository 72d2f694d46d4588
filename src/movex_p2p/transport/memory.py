"""In-process networks: ``LocalNetwork`` and, with seeded faults, ``FaultyNetwork``.

Every frame is bytes produced by the codec. Reliable frames (``send``) arrive in order per
link; datagrams (``send_datagram``) may be lost and overtake each other. ``FaultyNetwork``
applies the shared link model (:class:`movex_p2p.links.Links`, also used by the simulations):
delay holds frames, loss drops datagrams only (a reliable link either delivers or breaks), a
partition or a kill cuts links silently, and the survivors' endpoints report ``PeerDown`` only
after ``detect_after`` seconds, as a heartbeat would on a real network.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

from ..errors import ChannelClosed, LocalProtocolError
from ..ids import PeerId
from ..links import Links
from ..routes import Lane
from ..world import Timeline
from .base import MAX_DATAGRAM, Frame, IdentityInUse, PeerDown, PeersSeen, PeerUp, TransportEvent

if TYPE_CHECKING:
    from ..identity import Identity

__all__ = ["FaultyNetwork", "LocalNetwork", "LocalStatus"]

log = logging.getLogger(__name__)

INBOX_LIMIT: Final = 100_000
_AUTH_FAILURES_KEPT: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalStatus:
    """What an in-process endpoint knows of its room (see ``Endpoint.status``)."""

    seen: tuple[PeerId, ...]
    linked: tuple[PeerId, ...]
    refused: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class _Held:
    event: TransportEvent
    ordered: bool = False  # a reliable frame: later reliable frames wait behind it


class _LocalEndpoint:
    """One peer's end of an in-process network."""

    def __init__(self, network: LocalNetwork, peer_id: PeerId, name: str, room: str, secret: str | None) -> None:
        self._network = network
        self.peer_id = peer_id
        self.name = name
        self.room = room
        self.secret = secret
        self._links: set[PeerId] = set()
        self._send, self._inbox = anyio.create_memory_object_stream[TransportEvent | None](INBOX_LIMIT)
        self._due: Timeline[_Held] = Timeline()  # events held back (delay), in real time
        self._held_frames = 0
        self._last_frame_at = 0.0
        self.closed = False
        self.auth_failures: deque[str] = deque(maxlen=_AUTH_FAILURES_KEPT)  # short texts, as on the LAN
        """The latest authentication failures (as :class:`~movex_p2p.transport.lan.LanEndpoint` keeps them)."""
        self.refused: Counter[str] = Counter()
        """Handshakes that failed, by reason: here only ``"wrong secret"`` (another secret, same room)."""

    @property
    def peers(self) -> frozenset[PeerId]:
        return frozenset(self._links)

    def status(self) -> LocalStatus:
        """Peers of this room on the network that this one can reach (``seen``), links, refusals."""
        network = self._network
        seen = [
            other.peer_id
            for other in network._endpoints.values()
            if other is not self
            and other.room == self.room
            and not other.closed
            and network._can_talk(self.peer_id, other.peer_id)
        ]
        return LocalStatus(
            seen=tuple(sorted(seen)),
            linked=tuple(sorted(self._links)),
            refused=tuple(sorted(self.refused.items())),
        )

    def room_started(self, started: bool) -> None:
        """Nothing to tell: an in-process network announces no lobby hints."""

    def send(self, peer: PeerId, data: bytes) -> None:
        if self.closed or peer not in self._links:
            raise ChannelClosed(f"no link to {peer}")
        self._network._deliver(self, peer, bytes(data), Lane.RELIABLE)

    def send_datagram(self, peer: PeerId, data: bytes) -> None:
        if self.closed or peer not in self._links:
            raise ChannelClosed(f"no link to {peer}")
        if len(data) > MAX_DATAGRAM:
            raise LocalProtocolError(f"a datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}: use send()")
        self._network._deliver(self, peer, bytes(data), Lane.DATAGRAM)

    async def receive(self) -> TransportEvent:
        while True:
            due = self._due.next_at
            if due is not None and due <= anyio.current_time():
                return self._pop_due()
            if due is None:  # the common case: no cancel scope needed (they cost ~20 us each)
                got = await self._inbox.receive()
                if got is not None:
                    return self._take(got)
                continue
            with anyio.move_on_after(due - anyio.current_time()):
                got = await self._inbox.receive()
                if got is not None:  # None only wakes us to look at the due heap again
                    return self._take(got)

    def receive_nowait(self) -> TransportEvent:
        """The next event if one is ready now, else raise ``anyio.WouldBlock`` (never waits)."""
        while True:
            due = self._due.next_at
            if due is not None and due <= anyio.current_time():
                return self._pop_due()
            got = self._inbox.receive_nowait()
            if got is not None:
                return self._take(got)

    def _pop_due(self) -> TransportEvent:
        held = self._due.pop()
        if held.ordered:
            self._held_frames -= 1
        return self._take(held.event)

    def _forget_down(self, peer: PeerId) -> bool:
        """Drop a ``PeerDown`` of ``peer`` still held back; True if there was one."""
        return bool(self._due.remove(lambda held: isinstance(held.event, PeerDown) and held.event.peer == peer))

    def _take(self, event: TransportEvent) -> TransportEvent:
        match event:
            case PeerUp(peer=peer):
                self._links.add(peer)
            case PeerDown(peer=peer):
                self._links.discard(peer)
        return event

    def _put(self, event: TransportEvent, delay: float = 0.0, *, ordered: bool = False) -> None:
        """Deliver ``event`` after ``delay``; ``ordered`` (reliable frames) never overtake one another."""
        if self.closed:
            return
        if delay <= 0 and not (ordered and self._held_frames):
            self._push(event)
            return
        at = anyio.current_time() + delay
        if ordered:  # reliable frames keep their order even when the delay setting changes
            at = self._last_frame_at = max(at, self._last_frame_at)
            self._held_frames += 1
        self._due.at(at, _Held(event, ordered))
        self._push(None)

    def _push(self, event: TransportEvent | None) -> None:
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            log.warning("peer %s overran its inbox; dropping an event", self.peer_id)
        except anyio.ClosedResourceError:
            pass

    def _close(self) -> None:
        self.closed = True
        self._send.close()
        self._inbox.close()  # first: a pending receive() wakes with EndOfStream
        self._inbox.close()  # else the stream leaks (ResourceWarning under filterwarnings=error)


class LocalNetwork:
    """An in-process network: pass the same object as ``transport=`` to several peers."""

    detect_after: float = 1.0

    def __init__(self) -> None:
        self._endpoints: dict[PeerId, _LocalEndpoint] = {}

    # -- fault hooks (no faults here) ----------------------------------------------------------

    def _can_talk(self, a: PeerId, b: PeerId) -> bool:
        return True

    def _frame_delay(self, src: PeerId, dst: PeerId, lane: Lane) -> float | None:
        """Seconds to hold a frame, or None to drop it."""
        return 0.0

    # -- the Transport protocol ----------------------------------------------------------------

    @asynccontextmanager
    async def connect(
        self,
        *,
        peer_id: PeerId,
        name: str,
        room: str,
        secret: str | None,
        max_frame: int | None = None,
        role: str = "player",
        identity: Identity | None = None,
    ) -> AsyncIterator[_LocalEndpoint]:
        """Join ``room``; peers with another secret never get a link to this one (frames have no size limit here).

        In process, ids are trusted (``identity`` is not needed). Both sides count a pair with
        different secrets as a failed handshake (``refused``, ``auth_failures``), as on the LAN.
        A second live endpoint of one id takes the first one's links (:meth:`_supersede`).
        """
        endpoint = _LocalEndpoint(self, peer_id, name, room, secret)
        old = self._endpoints.get(peer_id)
        self._endpoints[peer_id] = endpoint
        if old is not None:
            self._supersede(old, endpoint)
        for other in self._endpoints.values():
            if other is endpoint or not self._can_talk(peer_id, other.peer_id):
                continue
            if self._same_room(endpoint, other):
                self._link(endpoint, other)
            elif endpoint.room == other.room and endpoint.secret != other.secret and not other.closed:
                for ours, theirs in ((endpoint, other), (other, endpoint)):  # as a LAN handshake fails both ways
                    ours.refused["wrong secret"] += 1
                    ours.auth_failures.append(f"{theirs.peer_id} does not hold our room secret")
                    # an event, so the node steps and sees the refusal: no peer here may still link
                    ours._put(PeersSeen(peers=frozenset()))
        try:
            yield endpoint
        finally:
            self._leave(endpoint, graceful=True)

    def _supersede(self, old: _LocalEndpoint, new: _LocalEndpoint) -> None:
        """``new`` joins with the id of the live ``old`` (one identity in two processes): it takes old's
        links, as a LAN peer's newer incarnation does; old keeps none, and both are told."""
        for other in self._endpoints.values():
            if other is new or other is old:
                continue
            if old.peer_id in other._links or self._up_pending(other, old.peer_id):
                other._put(PeerDown(peer=old.peer_id, graceful=False))  # before new's PeerUp
            if other.peer_id in old._links or self._same_room(old, other):
                old._put(PeerDown(peer=other.peer_id, graceful=False))  # after any PeerUp still queued
        where = f"room {old.room!r} with this peer's identity ({old.peer_id})"
        old._put(IdentityInUse(superseded=True, detail=f"another process joined {where} and took its links"))
        new._put(IdentityInUse(superseded=False, detail=f"another process was in {where}: this one took its links"))

    def _same_room(self, a: _LocalEndpoint, b: _LocalEndpoint) -> bool:
        return a.room == b.room and a.secret == b.secret and not a.closed and not b.closed

    def _link(self, a: _LocalEndpoint, b: _LocalEndpoint) -> None:
        for ours, theirs in ((a, b), (b, a)):
            # a peer that comes back (same id) before its old link was declared dead: that link ends now
            if ours._forget_down(theirs.peer_id):
                ours._put(PeerDown(peer=theirs.peer_id, graceful=False))
            ours._put(PeerUp(peer=theirs.peer_id, name=theirs.name))

    def _leave(self, endpoint: _LocalEndpoint, *, graceful: bool) -> None:
        if self._endpoints.get(endpoint.peer_id) is not endpoint:
            endpoint._close()  # gone already, or superseded: another endpoint of its id holds its links
            return
        del self._endpoints[endpoint.peer_id]
        endpoint._close()
        for other in self._endpoints.values():
            if endpoint.peer_id in other._links or self._up_pending(other, endpoint.peer_id):
                other._put(PeerDown(peer=endpoint.peer_id, graceful=graceful), 0.0 if graceful else self.detect_after)

    @staticmethod
    def _up_pending(endpoint: _LocalEndpoint, peer: PeerId) -> bool:
        return any(isinstance(held.event, PeerUp) and held.event.peer == peer for held in endpoint._due)

    def _deliver(self, source: _LocalEndpoint, peer: PeerId, data: bytes, lane: Lane) -> None:
        target = self._endpoints.get(peer)
        if (
            target is None
            or self._endpoints.get(source.peer_id) is not source
            or not self._can_talk(source.peer_id, peer)
        ):
            return  # no such peer, a superseded sender, or a cut link
        delay = self._frame_delay(source.peer_id, peer, lane)
        if delay is None:
            return
        target._put(Frame(peer=source.peer_id, data=data), delay, ordered=lane is Lane.RELIABLE)


class FaultyNetwork(LocalNetwork):
    """A LocalNetwork with seeded faults: kill, partition, heal, datagram loss and delay."""

    def __init__(self, seed: int = 0, *, detect_after: float = 1.0) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.links = Links(self.rng)
        """The link model (shared with the simulations): finer control, e.g. loss on one direction."""
        self.detect_after = detect_after

    def set_loss(self, p: float) -> None:
        """Lose each datagram with probability ``p`` (seeded); reliable frames are never lost while a link is up.

        A reliable channel that drops frames is a broken link: cut links with ``partition`` or ``kill``.
        """
        self.links.set_loss(p)

    def set_delay(self, seconds: float, *, jitter: float = 0.0) -> None:
        """Hold every frame for ``seconds`` plus a seeded uniform draw from ``[0, jitter]``.

        Reliable frames keep their order per link; datagrams with different draws overtake each other.
        """
        if seconds < 0 or jitter < 0:
            raise ValueError("delay and jitter must be >= 0")
        self.links.set_delay(seconds, seconds + jitter)

    def kill(self, peer_id: str) -> None:
        """The peer vanishes without a goodbye: its endpoint closes, the others notice later."""
        endpoint = self._endpoints.get(PeerId(peer_id))
        if endpoint is None:
            raise KeyError(f"no peer {peer_id} on this network")
        self.links.kill(peer_id)
        self._leave(endpoint, graceful=False)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between different groups (peers in no group form one more group)."""
        self.links.partition(*groups)
        for a, b in itertools.combinations(list(self._endpoints.values()), 2):
            if b.peer_id in a._links and not self._can_talk(a.peer_id, b.peer_id):
                a._put(PeerDown(peer=b.peer_id, graceful=False), self.detect_after)
                b._put(PeerDown(peer=a.peer_id, graceful=False), self.detect_after)

    def heal(self) -> None:
        """Restore every link cut by a partition."""
        if not self.links.partitioned:
            return
        before = {
            (a.peer_id, b.peer_id): self._can_talk(a.peer_id, b.peer_id)
            for a, b in itertools.permutations(self._endpoints.values(), 2)
        }
        self.links.heal()
        for a, b in itertools.combinations(list(self._endpoints.values()), 2):
            if not before[(a.peer_id, b.peer_id)] and self._same_room(a, b):
                self._link(a, b)

    @asynccontextmanager
    async def connect(
        self,
        *,
        peer_id: PeerId,
        name: str,
        room: str,
        secret: str | None,
        max_frame: int | None = None,
        role: str = "player",
        identity: Identity | None = None,
    ) -> AsyncIterator[_LocalEndpoint]:
        """Join ``room`` (a killed peer's id may join again)."""
        self.links.revive(peer_id)
        async with super().connect(peer_id=peer_id, name=name, room=room, secret=secret, role=role) as endpoint:
            yield endpoint

    def _can_talk(self, a: PeerId, b: PeerId) -> bool:
        return self.links.linked(a, b)

    def _frame_delay(self, src: PeerId, dst: PeerId, lane: Lane) -> float | None:
        now = anyio.current_time()
        at = self.links.arrival(src, dst, now, lane)
        return None if at is None else at - now
