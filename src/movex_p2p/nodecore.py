"""NodeCore: one peer's cores wired together, with no I/O (the node's brain, pure).

It owns the ClientCore (every peer), the MasterCore (while elected) and the ElectionMachine,
routes messages between them, and collects what the driver must do: ``outbox`` (messages per
peer, sent as one frame each) and ``events`` (what the app should hear of). The asyncio driver
(:class:`movex_p2p.Peer`) and the virtual-time simulation (:mod:`movex_p2p.simulation`) both
drive it, so the simulation tests the same routing the real peer runs.

Two clocks come in: ``now`` (monotonic, for election deadlines) and ``wall`` (seconds since
the epoch, for master values, transforms and the master's recovery deadline).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

from . import wire
from .election import machine as el
from .election.messages import MESSAGES as ELECTION_MESSAGES
from .errors import MovexError
from .ids import PeerId, Term
from .resource import effects as fx
from .resource import messages as rm
from .resource.client import ClientCore
from .resource.master import MasterCore
from .resource.types import ResourceType

if TYPE_CHECKING:
    import random

__all__ = ["NodeCore", "NodeEvent"]

_ELECTION_TYPES: Final = tuple(ELECTION_MESSAGES.values())
_TO_MASTER: Final = (rm.Create, rm.Bind, rm.Unbind, rm.Propose, rm.Restore, rm.Hello, rm.SyncRequest)

NodeEvent = fx.Effect | el.MasterChanged
"""What the driver hears of: the client's notifications and master changes."""


class NodeCore:
    """One peer's client, master and election, routed together; see the module docstring."""

    def __init__(
        self,
        me: PeerId,
        *,
        types: Mapping[str, ResourceType],
        election: el.ElectionConfig,
        rng: random.Random,
    ) -> None:
        self.me = me
        self.types = dict(types)
        self.rng = rng
        self.majority = election.policy is el.Policy.MAJORITY
        self.client = ClientCore(me, types=self.types, wait_commit=self.majority)
        self.election = el.ElectionMachine(me, config=election, rng=rng)
        self.master: MasterCore | None = None
        self.peers: frozenset[PeerId] = frozenset()
        self.outbox: dict[PeerId, list[wire.Message]] = {}
        self.events: list[NodeEvent] = []
        self.dropped: list[tuple[PeerId, str]] = []
        self._local: deque[wire.Message] = deque()
        self._held: list[tuple[PeerId, rm.ResourceMessage]] = []  # for the master while its lease lapsed
        self._position: tuple[int, int] = (0, 0)
        self._last_master: PeerId | None = None
        self._acks: dict[PeerId, int] = {}  # majority: what each replica holds (master side)
        self._committed = 0
        self._acked = 0  # majority: the last index we acked (client side)
        self._now = 0.0
        self._wall = 0.0

    # -- inputs --------------------------------------------------------------------------------

    def start(self, now: float, wall: float) -> None:
        """Begin: the election arms its first timer."""
        self._clock(now, wall)
        self._election_effects(self.election.start(now))
        self.drain()

    def links_changed(
        self, peers: frozenset[PeerId], now: float, wall: float, *, left: PeerId | None = None, graceful: bool = False
    ) -> None:
        """The set of other peers with an open link is now ``peers`` (``left`` just went away)."""
        self._clock(now, wall)
        before, self.peers = self.peers, frozenset(peers)
        master = self.client.master
        if master is not None and master != self.me and master in self.peers and master not in before:
            # the link to our master came back: what we sent meanwhile may be lost, so report
            # our replicas again and re-send pending work (the master drops duplicates)
            self.resource_effects(self.client.master_changed(master, self.election.term))
        if left is not None:
            self._election_effects(self.election.step(el.PeerLeft(peer=left, graceful=graceful), now))
        self._election_effects(self.election.step(el.PeersChanged(peers=self.peers), now))
        if self.master is not None:
            self.resource_effects(self.master.peers_changed(self.peers, wall))
        self.drain()

    def receive(self, sender: PeerId, messages: Iterable[wire.Message], now: float, wall: float) -> None:
        """Messages arrived from ``sender`` (already decoded and validated)."""
        self._clock(now, wall)
        for message in messages:
            self._route(sender, message)
        self.drain()

    def tick(self, now: float, wall: float) -> None:
        """Time passed: fire due election and master timers."""
        self._clock(now, wall)
        deadline = self.election.deadline
        if deadline is not None and now >= deadline:
            self._election_effects(self.election.step(el.Tick(), now))
        if self.master is not None and self.master.deadline is not None and wall >= self.master.deadline:
            self.resource_effects(self.master.tick(wall))
        if self._held:
            self._release_held()
        self.resource_effects(self.client.resend_stalled(wall))
        self.drain()

    def hand_over(self, now: float, wall: float) -> None:
        """Shutting down: a master hands over to its most caught-up peer."""
        self._clock(now, wall)
        self._election_effects(self.election.step(el.Handover(), now))
        self.drain()

    def seconds_to_deadline(self, now: float, wall: float) -> float | None:
        """Seconds until the next timer, or None when there is none."""
        waits = []
        if self.election.deadline is not None:
            waits.append(self.election.deadline - now)
        if self.master is not None and self.master.deadline is not None:
            waits.append(self.master.deadline - wall)
        return max(0.0, min(waits)) if waits else None

    # -- routing -------------------------------------------------------------------------------

    def _clock(self, now: float, wall: float) -> None:
        self._now, self._wall = now, wall

    def _route(self, sender: PeerId, message: wire.Message) -> None:
        try:
            if isinstance(message, _ELECTION_TYPES):
                received = el.Received(sender=sender, message=message)  # type: ignore[arg-type]
                self._election_effects(self.election.step(received, self._now))
            elif isinstance(message, rm.Ack):
                self._on_ack(sender, message)
            elif isinstance(message, _TO_MASTER) or (
                isinstance(message, rm.Snapshot) and self.master is not None and sender != self.client.master
            ):
                self._to_master(sender, message)
            else:
                self.resource_effects(self.client.step(sender, message, self._wall))  # type: ignore[arg-type]
        except MovexError as exc:
            self.dropped.append((sender, f"{type(message).__name__}: {exc}"))
        except Exception as exc:  # a bug or input no rule foresaw: drop it, keep the peer running
            self.dropped.append((sender, f"{type(message).__name__} raised {type(exc).__name__}: {exc}"))

    def _to_master(self, sender: PeerId, message: rm.ResourceMessage) -> None:
        if message.term > self.election.term:
            self._observe(Term(message.term))
            return
        if self.master is None:
            return  # not (or no longer) master; the sender re-sends to the next one
        self._held.append((sender, message))
        self._release_held()

    def _release_held(self) -> None:
        """Serve queued master messages in arrival order, unless the lease lapsed (MAJORITY)."""
        if self.master is None:
            self._held.clear()
            return
        if not self.election.can_confirm(self._now):
            return  # without a quorum a master confirms nothing
        held, self._held = self._held, []
        for sender, message in held:
            self.resource_effects(self.master.step(sender, message, self._wall))

    def _on_ack(self, sender: PeerId, ack: rm.Ack) -> None:
        if self.master is None or ack.term != self.master.term:
            return
        if ack.index > self._acks.get(sender, 0):
            self._acks[sender] = ack.index
            self._advance_commit()

    def _advance_commit(self) -> None:
        """Majority: the highest index a quorum holds, counted from an entry of this term on."""
        master = self.master
        if master is None or master.began is None:
            return
        self._acks[self.me] = self.client.index
        for index in sorted(set(self._acks.values()), reverse=True):
            if index <= self._committed or index < master.began:
                return
            if self.election.has_quorum(frozenset(p for p, i in self._acks.items() if i >= index)):
                self._committed = index
                self.resource_effects([fx.Broadcast(message=rm.Committed(term=master.term, index=index))])
                return

    def _observe(self, term: Term) -> None:
        self._election_effects(self.election.step(el.Observed(term=term), self._now))

    # -- effects -------------------------------------------------------------------------------

    def _election_effects(self, effects: Iterable[el.Effect]) -> None:
        for effect in effects:
            match effect:
                case el.Send(to=to, message=message):
                    self._send(to, message)
                case el.Broadcast(message=message):
                    self._to_every_peer(message)
                case el.MasterChanged(master=master, term=term):
                    self._master_changed(master, term)
                    self.events.append(effect)

    def _master_changed(self, master: PeerId | None, term: Term) -> None:
        previous = self._last_master
        if master is not None:
            self._last_master = master
        self._acks.clear()
        self._committed = 0
        self._acked = 0
        if master == self.me:
            if self.master is None or self.master.term != term:
                self.master = MasterCore(
                    self.me,
                    term=term,
                    types=self.types,
                    salt=self.rng.randbytes(32),
                    rng_factory=type(self.rng),
                    index=self.client.index,
                    replicas=self.client.replicas.values(),
                    # the master we replace is gone or deposed: do not wait for its Hello
                    peers=self.peers - {previous} if previous is not None else self.peers,
                    now=self._wall,
                )
        else:
            self.master = None
            self._held.clear()
        self.resource_effects(self.client.master_changed(master, term))

    def resource_effects(self, effects: Iterable[fx.Effect]) -> None:
        """Execute effects of the resource cores (the driver passes the client's command effects here)."""
        for effect in effects:
            match effect:
                case fx.Send(to=to, message=message):
                    self._send(to, message)
                case fx.Broadcast(message=message):
                    self._to_every_peer(message)
                    self._local.append(message)
                case fx.TermObserved(term=term):
                    self._observe(term)
                case _:
                    self.events.append(effect)

    def _to_every_peer(self, message: wire.Message) -> None:
        for peer in self.peers:
            self.outbox.setdefault(peer, []).append(message)

    def _send(self, to: PeerId, message: wire.Message) -> None:
        if to == self.me:
            self._local.append(message)
        else:
            self.outbox.setdefault(to, []).append(message)

    def drain(self) -> None:
        """Deliver messages this peer sent itself, then report a new log position to the election."""
        while self._local:
            self._route(self.me, self._local.popleft())
        if self.majority:
            self._ack_position()
        position = self.client.position
        if position != self._position:
            self._position = position
            self._election_effects(self.election.step(el.LogPosition(term=position[0], index=position[1]), self._now))
            while self._local:
                self._route(self.me, self._local.popleft())

    def _ack_position(self) -> None:
        index = self.client.index
        if index <= self._acked:
            return
        self._acked = index
        master = self.client.master
        if master is None:
            return
        if master == self.me:
            self._advance_commit()
            while self._local:
                self._route(self.me, self._local.popleft())
        else:
            self._send(master, rm.Ack(term=self.client.term, index=index))

    def take_outbox(self) -> dict[PeerId, list[wire.Message]]:
        """Messages to send, per peer (in order); the outbox is emptied."""
        outbox, self.outbox = self.outbox, {}
        return outbox

    def take_events(self) -> list[NodeEvent]:
        """Notifications for the app, in order; the list is emptied."""
        events, self.events = self.events, []
        return events
