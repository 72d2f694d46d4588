"""NodeCore: one peer's cores wired together, with no I/O (the node's brain, pure).

It owns the ClientCore (every peer), the MasterCore (while elected) and the ElectionMachine.
Everything that happens to a peer comes in through one of its methods: transport events and
time (:meth:`NodeCore.step`: the events, then the timers due; :meth:`receive` and :meth:`tick`
are its two halves), the app's commands (:meth:`create`, :meth:`bind`, :meth:`unbind`,
:meth:`remove`, :meth:`dispatch`) and leaving (:meth:`hand_over`). Each call returns ONE
:class:`Ready` (etcd/raft style): the frames to send per peer and lane, the events for the app,
the faults (bugs of ours), the dropped input (the sender's fault) and when the next timer is due.
A dispatch queues its frames for the next step (a burst leaves as one frame per peer). The
asyncio driver (:class:`movex_p2p.driver.Driver`) and the virtual-time :mod:`movex_p2p.simulation`
do nothing but execute Readies, so the simulation tests the very routing the real peer runs.

NodeCore routes; its collaborators each hold one job: :class:`~movex_p2p.outbox.Outbox` (what a
step sends, by peer and lane, and its framing), :class:`~movex_p2p.roster.Roster` (members and
type conflicts) and :class:`~movex_p2p.signed_history.SignedHistory` (endorsements, seals, witnesses).

Routing: every message takes the route its messages module declares (:data:`movex_p2p.wire.ROUTES`)
and leaves on the lane declared there (:data:`movex_p2p.wire.LANES`). Messages a peer sends itself
(the master's log entries for its own replica, a client's proposals to its own master) are
delivered in the same step, before the Ready is built.

Presence (:mod:`movex_p2p.presence`): each side of a new link introduces itself once; an
introduced linked peer is a member (:class:`PeerJoined`, :class:`PeerLeft`). Spectators are
passed on to the election. A peer whose version of a resource type differs from ours is
reported (:class:`TypeConflict`), and no message about that type is taken from it or served
to it: the master refuses its requests (``"incompatible"``), and a client ignores a master's
entries for that type, so two builds of a game never mix one type's state.

Two clocks come in: ``now`` (monotonic) runs every timer; ``wall`` (seconds since the epoch) is
data only. A peer that becomes master reads the wall clock once and from then on its master
clock (``master.now()``, deadlines in states, the stamps clients predict with) is that reading
advanced by the monotonic clock, so a wall clock set back or forward never holds or fires a timer.

The node also plumbs the signed history (docs/security.md): it signs this
peer's proposals once per frame (``Endorse``); as master it checks each author's endorsement
before an action reaches the MasterCore, makes sure every peer gets an author's ``Endorsed``
before the first entry it covers, and seals each step's heads; as a peer it sends the latest
seal it got to the others (``Witness``) and compares theirs: two valid seals of one master for
the same log index that differ prove a forked history. A peer caught forging (that, or an
entry its author never signed) is reported (:class:`~.resource.effects.Forged`) and never followed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, assert_never

from . import wire
from .censorship import Censored, CensorMessage, CensorWatch
from .election import machine as el
from .election.machine import MasterChanged
from .election.messages import ElectionMessage
from .errors import ProtocolError
from .ids import PeerId, Rid, Term
from .nodecensor import check_censorship, gossip_unconfirmed, on_censor
from .outbox import FRAME_TARGET as FRAME_TARGET  # re-exported: tests size frames by it
from .outbox import Outbox
from .presence import Introduce, PeerInfo, Role
from .resource import effects as fx
from .resource import messages as rm
from .resource.acks import Acks
from .resource.client import ClientCore
from .resource.draws import Player
from .resource.master import MasterCore
from .resource.types import Action, ResourceType
from .roster import MAX_EARLY_INTROS as MAX_EARLY_INTROS  # re-exported
from .roster import Roster
from .roster import incompatibility as incompatibility  # re-exported (the notifier words its errors so)
from .routes import Route
from .signed_history import SignedHistory
from .signing import RecallingSigner, RecallingVerifier
from .transport.base import Frame, IdentityInUse, PeerDown, PeersSeen, PeerUp, TransportEvent
from .verify import screen

if TYPE_CHECKING:
    import random

    from .signing import Signer, Verifier

__all__ = [
    "Dropped",
    "Fault",
    "MasterChanged",
    "NodeCore",
    "NodeEvent",
    "PeerJoined",
    "PeerLeft",
    "PeersChanged",
    "Ready",
    "TypeConflict",
]

# -- what a step returns -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PeersChanged:
    """The other peers with an open link are now ``peers``."""

    peers: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerJoined:
    """``info.id`` is in the room: linked and introduced."""

    info: PeerInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerLeft:
    """``info.id`` left the room: ``reason`` is ``"left"`` (it said goodbye) or ``"lost"`` (declared dead)."""

    info: PeerInfo
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeConflict:
    """``peer`` (named ``name``) has ``theirs`` as the version of resource type ``type``; this peer ``ours``."""

    peer: PeerId
    name: str
    type: str
    ours: str
    theirs: str


NodeEvent = (
    fx.Notice
    | MasterChanged
    | PeersChanged
    | PeerJoined
    | PeerLeft
    | TypeConflict
    | fx.Forged
    | IdentityInUse
    | Censored
)
"""What the app hears of, in order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """A bug of ours: handling ``what`` (from ``sender``) raised ``error``; ``traceback`` says where."""

    sender: PeerId
    what: str
    error: str
    traceback: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropped:
    """Input refused as its sender's fault (malformed, unknown, stale or illegal): ``reason`` says why."""

    sender: PeerId
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    """What one step asks of the driver: send ``frames`` and ``datagrams`` (one per peer), then report."""

    frames: dict[PeerId, bytes]
    """Reliable lane, one frame per peer: ``Endpoint.send``."""
    more: list[tuple[PeerId, bytes]]
    """Reliable lane, further frames in order, after ``frames``: a peer's messages that did not fit one
    frame of :data:`FRAME_TARGET` bytes (big states), so no frame is ever much larger than its largest message."""
    datagrams: dict[PeerId, bytes]
    """Datagram lane, one frame of at most MAX_DATAGRAM bytes per peer: ``Endpoint.send_datagram``."""
    events: list[NodeEvent]
    faults: list[Fault]
    dropped: list[Dropped]
    deadline: float | None = None
    """When the next timer is due after this step, on the ``now`` clock (None: no timer). A
    dispatch's Ready carries the one of the last step: its own timers count from the next step."""


_ROUTES: Final = wire.ROUTES


class NodeCore:
    """One peer's client, master and election, routed together; see the module docstring."""

    def __init__(
        self,
        me: PeerId,
        *,
        types: Mapping[str, ResourceType],
        election: el.ElectionConfig,
        rng: random.Random,
        decode_limit: int = wire.DECODE_LIMIT,
        name: str = "",
        info: dict[str, Any] | None = None,
        role: Role = "player",
        opaque: bool = False,
        signer: Signer,
        verifier: Verifier,
        entropy: Callable[[int], bytes] | None = None,
        room: str = "",
    ) -> None:
        """``name``, ``info`` and ``role`` are what this peer introduces itself with; ``opaque`` (a
        spectator only) replicates, read-only, the resources of types it does not have.
        ``signer`` (whose id is ``me``; a real peer's Identity) signs what this peer must prove to
        others, ``verifier`` checks what others sign (docs/security.md). ``entropy(n)``
        gives ``n`` unpredictable bytes for commitments (the Peer passes ``os.urandom``; default: ``rng``).
        ``room`` is bound into every action's signed digest and sealed commitment (the Peer passes its room)."""
        if opaque and role != "spectator":
            raise ValueError("only a spectator can hold resources of types it does not have (opaque)")
        self.me = me
        if signer.id != me:
            raise ValueError("signer.id must be the node's own id")
        # a peer's own endorsements come back in the master's relays (also those a restarted
        # process of it signed before, which it cannot tell apart): the recent ones are not verified again
        self.signer = signer = RecallingSigner(signer)
        self.verifier = verifier = RecallingVerifier(verifier, signer)
        self._entropy = entropy or rng.randbytes
        self.history = SignedHistory(me, signer, room)
        self.censor = CensorWatch(me)  # proof of censorship (censorship.py): its policy and grace are settable
        self.types = dict(types)
        self.rng = rng
        self.decode_limit = decode_limit
        self.majority = election.policy is el.Policy.MAJORITY
        self.client = ClientCore(
            me,
            types=self.types,
            wait_commit=self.majority,
            opaque=opaque,
            room=room,
            signer=signer,
            fair=Player(me, signer=signer, seed=None if role == "spectator" else _fair_seed(me, rng, entropy)),
        )
        self.election = el.ElectionMachine(
            me, config=election, rng=rng, signer=signer, verifier=verifier, spectator=role == "spectator"
        )
        self.master: MasterCore | None = None
        self.peers: frozenset[PeerId] = frozenset()
        self.intro = Introduce(
            name=name, info=dict(info or {}), role=role, types={n: t.version for n, t in self.types.items()}
        )
        self.roster = Roster(self.types, role=role)
        self.members = self.roster.members
        """The OTHER peers in the room: linked and introduced (the roster's)."""
        self.conflicts = self.roster.conflicts
        """Members whose version of one of our types differs: peer -> {type name: its version} (the roster's)."""
        self.check_compatible = self.roster.check_compatible  # IncompatibleType if a member's version differs
        self.outbox = Outbox(me, encoded=self._shared_bytes)
        self._events: list[NodeEvent] = []
        self._faults: list[Fault] = []
        self._dropped: list[Dropped] = []
        self._position: tuple[int, int] = (0, 0)
        self._last_master: PeerId | None = None
        self._acks = Acks()  # majority: how far this replica acked to its master
        self._now = 0.0
        self._wall = 0.0
        self._anchor = 0.0  # wall - now when this peer became master: its master clock is now + anchor
        self._timers: tuple[float | None, ...] = (None, None, None, None)  # election, client, recovery, due
        self._deadline: float | None = None  # as the last step's Ready said

    # -- inputs --------------------------------------------------------------------------------

    def start(self, now: float, wall: float) -> Ready:
        """Begin: the election arms its first timer."""
        self._now, self._wall = now, wall
        self._guard(self.me, "start", self._election, self.election.start(now))  # no position yet
        return self._ready()

    def step(self, events: Iterable[TransportEvent], now: float, wall: float) -> Ready:
        """The driver's one step: ``events`` (maybe none) in arrival order, then the timers due by now.

        Its Ready also hands over every frame the app's commands queued since the last step.
        """
        self._now, self._wall = now, wall
        self._receive(events)
        if self._deadline is not None and self._deadline <= now:  # as the last step computed it
            self._guard(self.me, "tick", self._tick)
        return self._ready()

    def receive(self, events: Iterable[TransportEvent], now: float, wall: float) -> Ready:
        """Transport events, in the order they arrived: frames and links going up or down."""
        self._now, self._wall = now, wall
        self._receive(events)
        return self._ready()

    def _receive(self, events: Iterable[TransportEvent]) -> None:
        for event in events:
            match event:
                case Frame(peer=sender, data=data):
                    try:
                        messages = wire.decode(data, limit=self.decode_limit)
                    except ProtocolError as exc:
                        self._dropped.append(Dropped(sender=sender, reason=f"malformed frame: {exc}"))
                        continue
                    for message in messages:
                        if _verified(self, sender, message):  # every signature, once
                            self._route(sender, message)
                case PeerUp(peer=peer):
                    self._guard(peer, "PeerUp", self._link_up, peer)
                case PeerDown(peer=peer, graceful=graceful):
                    self._guard(peer, "PeerDown", self._link_down, peer, graceful)
                case PeersSeen(peers=seen):
                    self._guard(self.me, "PeersSeen", self._elect, el.Joining(peers=seen))
                case IdentityInUse(superseded=superseded):
                    self._events.append(event)  # the app hears of it (a "duplicate_identity" diagnostic)
                    if superseded:  # the other process took our links: step aside for good
                        self.roster.step_aside()  # the app's writes raise from now on
                        self._guard(self.me, "IdentityInUse", self._elect, el.StepAside())
                case _:
                    assert_never(event)

    def tick(self, now: float, wall: float) -> Ready:
        """Time passed: fire due timers (election, master recovery, the client's re-sends)."""
        self._now, self._wall = now, wall
        self._guard(self.me, "tick", self._tick)
        return self._ready()

    def hand_over(self, now: float, wall: float) -> Ready:
        """Shutting down: a master hands over to its most caught-up peer."""
        self._now, self._wall = now, wall
        self._guard(self.me, "hand_over", self._elect, el.Handover())
        return self._ready()

    def seconds_to_deadline(self, now: float) -> float | None:
        """Seconds until the next timer (0 if overdue), or None when there is none (timers as of the last step)."""
        election, client, recovery, due = self._timers
        clock = now + self._anchor  # the master's timers run on its master clock
        lease = due is not None and self.election.can_confirm(now)  # reveals and state deadlines need it
        timers = ((election, now), (client, now), (recovery, clock), (due if lease else None, clock))
        waits = [at - since for at, since in timers if at is not None]
        return max(0.0, min(waits)) if waits else None

    @property
    def _master_clock(self) -> float:
        """The master clock: the wall clock as read when this peer became master, advanced monotonically."""
        return self._now + self._anchor

    def next_deadline(self, now: float) -> float | None:
        """When (on the ``now`` clock) the next timer is due (``now`` if overdue), or None when there is none."""
        wait = self.seconds_to_deadline(now)
        return None if wait is None else now + wait

    # -- the app's commands (raise LocalProtocolError for what the app may not do) ----------------

    def create(self, rid: Rid, state: Any, now: float, wall: float, *, exist_ok: bool = True) -> tuple[int, Ready]:
        """Ask the master to create ``rid``; the answer comes as a RequestSettled(req) event."""
        self._now, self._wall = now, wall
        self.roster.check_write(rid)
        req, effects = self.client.create(rid, state, exist_ok=exist_ok)
        self._effects(effects)
        return req, self._ready()

    def bind(self, rid: Rid, info: dict[str, Any], now: float, wall: float) -> tuple[int, Ready]:
        """Subscribe to ``rid`` with presence ``info``; the answer comes as a RequestSettled(req) event."""
        self._now, self._wall = now, wall
        self.roster.check_bind(rid, info)
        req, effects = self.client.bind(rid, info)
        self._effects(effects)
        return req, self._ready()

    def unbind(self, rid: Rid, now: float, wall: float) -> Ready:
        """Stop being a subscriber of ``rid``."""
        self._now, self._wall = now, wall
        self._effects(self.client.unbind(rid))
        return self._ready()

    def remove(self, rid: Rid, now: float, wall: float) -> tuple[int, Ready]:
        """Ask the master to delete ``rid`` everywhere; the answer comes as a RequestSettled(req) event."""
        self._now, self._wall = now, wall
        self.roster.check_write(rid)
        req, effects = self.client.remove(rid)
        self._effects(effects)
        return req, self._ready()

    def dispatch(self, rid: Rid, action: Action, private: Action | None, now: float, wall: float) -> tuple[int, Ready]:
        """Apply ``action`` optimistically and queue it (``private``: a private/public pair); returns its seq.

        The Ready has the step's events (a master settles its own action here) and no frames:
        they leave with the next :meth:`step`, so a burst of dispatches is one frame per peer.
        """
        self._now, self._wall = now, wall
        self.roster.check_writer(rid)
        nonce = self._entropy(16) if private is not None else b""
        seq, effects = self.client.dispatch(rid, action, private, now=now, nonce=nonce)
        self._effects(effects)
        return seq, self._ready(hold=True)

    @property
    def queued(self) -> bool:
        """True when commands queued frames that no step has handed over yet."""
        return self.outbox.queued

    # -- routing -------------------------------------------------------------------------------

    def _guard(self, sender: PeerId, what: str, handle: Callable[..., object], *args: Any) -> None:
        """Run ``handle(*args)``: a ProtocolError is the sender's fault (dropped), anything else ours (a fault)."""
        try:
            handle(*args)
        except ProtocolError as exc:
            self._dropped.append(Dropped(sender=sender, reason=f"{what}: {exc}"))
        except Exception as exc:
            self._fault(sender, what, exc)

    def _fault(self, sender: PeerId, what: str, exc: Exception) -> None:
        self._faults.append(
            Fault(sender=sender, what=what, error=repr(exc), traceback="".join(traceback.format_exception(exc)))
        )

    def _route(self, sender: PeerId, message: wire.Message) -> None:
        """Hand ``message`` to the core its route names (a guard of its own: one message, one verdict)."""
        try:
            # the route table is derived from these unions, so each narrowing below is exact
            match _ROUTES[type(message)]:
                case Route.TO_CLIENTS:
                    to_clients: rm.ToClients = message  # type: ignore[assignment]
                    if type(to_clients) is rm.Sealed or type(to_clients) is rm.Removed:
                        self._forked(self.history.keep_seal(sender, to_clients, self.client.master, self.client.term))
                    if self.roster.conflicting(sender, to_clients):
                        return  # a master of another build: its entries for that type are not ours
                    self._effects(self.client.step(sender, to_clients, self._now))
                case Route.TO_MASTER:
                    to_master: rm.ToMaster = message  # type: ignore[assignment]
                    self._effects(self._serve(sender, to_master))
                case Route.ELECTION:
                    election: ElectionMessage = message  # type: ignore[assignment]
                    self._elect(el.Received(sender=sender, message=election))
                case Route.NODE:
                    node: Introduce | rm.ToPeers | CensorMessage = message  # type: ignore[assignment]
                    if type(node) is Introduce:
                        _on_intro(self, sender, node)
                    elif type(node) is rm.Witness:  # another peer's seal: does it and one of ours prove a fork?
                        self._forked(self.history.forked(sender, node))
                    else:
                        on_censor(self, sender, node)  # type: ignore[arg-type]
                case route:
                    assert_never(route)
        except ProtocolError as exc:
            self._dropped.append(Dropped(sender=sender, reason=f"{type(message).__name__}: {exc}"))
        except Exception as exc:
            self._fault(sender, type(message).__name__, exc)

    def _serve(self, sender: PeerId, to_master: rm.ToMaster) -> list[fx.Effect]:
        """As master: what serving ``to_master`` returns; else nothing (the sender re-sends to the next one:
        a term it names proves nothing, a certified heartbeat is what moves the election)."""
        master = self.master
        if master is None:
            return []
        served, refusal = self.roster.serve(sender, to_master, master, self.me, self.intro.name)
        effects: list[fx.Effect] = [] if refusal is None else [fx.Send(to=sender, message=refusal)]
        if served is None or not self.history.endorsed(sender, served):
            return effects
        if type(served) is rm.Report and self.history.distrusts(sender):  # a forger's replicas are not
            served = dataclasses.replace(served, have={})  # recovered: it gets ours, as if it held none
        lease = not self.majority or self.election.can_confirm(self._now)
        return effects + master.step(sender, served, self._master_clock, lease=lease)

    # -- the signed history (see the module docstring) --------------------------------------------

    def _publish_endorsement(self, message: rm.ToClients) -> None:
        """As master, before an author's Applied reaches a peer: that peer gets the author's Endorsed first."""
        for peer, endorsed in self.history.endorsement_for(message, self.peers):
            self.outbox.reliably(peer, endorsed)

    def _endorse_outgoing(self) -> None:
        """Sign the proposals leaving for our master in this frame: one Endorse ahead of them."""
        master = self.client.master
        if master is None or master == self.me:
            return
        self.history.endorse(self.outbox.reliable.get(master), self.client.term)

    def _send_witness(self) -> None:
        for witness in self.history.witness(self._now):
            for peer in self.peers:
                if peer != self.client.master:
                    self.outbox.reliably(peer, witness)

    def _forked(self, verdict: tuple[PeerId, str] | None) -> None:
        if verdict is not None:
            self._distrust(*verdict)

    def _distrust(self, peer: PeerId, reason: str) -> None:
        if not self.history.distrust(peer):
            return
        self._events.append(fx.Forged(peer=peer, reason=reason))
        self._elect(el.Distrust(peer=peer))

    def _link_up(self, peer: PeerId) -> None:
        self.history.link_up(peer)  # what went over an earlier link may be lost: send again
        if peer == self.client.master and peer != self.me:
            # the link to our master (re)opened: what we sent meanwhile may be lost, so report
            # our replicas again and re-send pending work (the master drops duplicates)
            self._effects(self.client.master_changed(peer, self.election.term, self._now))
        if peer not in self.peers:
            self.peers = self.peers | {peer}
            self.outbox.send(peer, self.intro)
            early = self.roster.early.pop(peer, None)
            if early is not None:
                _introduce(self, peer, early)
            self._links_changed()

    def _link_down(self, peer: PeerId, graceful: bool) -> None:
        self.history.link_down(peer)
        self.censor.forget(peer)
        if peer not in self.peers:
            return
        self.peers = self.peers - {peer}
        member = self.roster.leave(peer)
        if member is not None:
            _roles_changed(self)
        self._elect(el.Disconnected(peer=peer, graceful=graceful))
        self.client.link_lost(peer)  # once the election let go of it
        self._links_changed()
        if member is not None:
            self._events.append(PeerLeft(info=member, reason="left" if graceful else "lost"))

    def _links_changed(self) -> None:
        self._elect(el.LinksChanged(peers=self.peers))
        if self.master is not None:
            lease = self.election.can_confirm(self._now)
            self._effects(self.master.peers_changed(self.peers, self._master_clock, lease=lease))
        self._events.append(PeersChanged(peers=self.peers))

    def _tick(self) -> None:
        now = self._now
        deadline = self.election.deadline
        if deadline is not None and now >= deadline:
            self._elect(el.Tick())
        if self.master is not None:
            self._effects(self.master.tick(self._master_clock, lease=self.election.can_confirm(now)))
        self._effects(self.client.resend_stalled(now))

    def _elect(self, event: el.Input) -> None:
        """Step the election, first telling it how up to date this replica is (for votes and acks)."""
        position = self.client.position
        if position != self._position:
            self._position = position
            self._election(self.election.step(el.LogPosition(term=position[0], index=position[1]), self._now))
        self._election(self.election.step(event, self._now))

    # -- effects -------------------------------------------------------------------------------

    def _election(self, effects: Iterable[el.Effect]) -> None:
        for effect in effects:
            match effect:
                case el.Send(to=to, message=message):
                    self.outbox.send(to, message)
                case el.ToOthers(message=message):  # to every other peer
                    for peer in self.peers:
                        self.outbox.send(peer, message)
                case el.MasterChanged(master=master, term=term):
                    self._master_changed(master, term)
                    self._events.append(effect)
                case el.Lagging():
                    self._effects(self.client.report())  # the master sends what we lack
                case _:
                    assert_never(effect)

    def _master_changed(self, master: PeerId | None, term: Term) -> None:
        previous = self._last_master
        if master is not None:
            self._last_master = master
        self._acks.reset()
        if master == self.me:
            if self.master is None or self.master.term != term:
                self._anchor = self._wall - self._now
                self.master = MasterCore(
                    self.me,
                    term=term,
                    types=self.types,
                    salt=self.rng.randbytes(32),
                    rng_factory=type(self.rng),
                    index=self.client.index,
                    replicas=self.client.replicas.values(),
                    # the master we replace is gone or deposed: do not wait for its Report
                    peers=self.peers - {previous} if previous is not None else self.peers,
                    now=self._master_clock,
                    quorum=self.election.has_quorum if self.majority else None,
                    signer=self.signer,
                    verifier=self.verifier,
                    master_of=self.election.master_of,
                    removed=self.client.removed,
                    encode=wire.encode,
                    room=self.client.sealing.room,
                    ledger=self.client.fair.ledger.copy(),
                    removal_seals=self.client.removal_seals,
                )
        else:
            self.master = None
        self.censor.reset()
        self._effects(self.client.master_changed(master, term, self._now))

    def _effects(self, effects: Iterable[fx.Effect]) -> None:
        """Execute what a resource core returned."""
        for effect in effects:
            match effect:
                case fx.Send(to=to, message=message):
                    self.outbox.send(to, message)
                case fx.Publish(message=message):  # to every peer, this one included
                    self._publish_endorsement(message)
                    self.outbox.publish(message, self.peers)
                case fx.TermObserved():
                    pass  # a term heard outside the election proves nothing: a certified heartbeat moves us
                case fx.Forged(peer=peer, reason=reason):
                    self._distrust(peer, reason)
                case fx.Stuck():
                    self._events.append(effect)
                    gossip_unconfirmed(self, effect)
                case (
                    fx.StateChanged()
                    | fx.ActionSettled()
                    | fx.RequestSettled()
                    | fx.PresenceChanged()
                    | fx.ResyncStarted()
                    | fx.Rebased()
                    | fx.Synced()
                    | fx.ResourceRemoved()
                    | fx.Stalled()
                    | fx.AppRaised()
                    | fx.PrivateLost()
                    | fx.OpeningForged()
                    | fx.DrawShort()
                ):
                    self._events.append(effect)
                case _:
                    assert_never(effect)

    # -- the end of every step -----------------------------------------------------------------

    def _ready(self, *, hold: bool = False) -> Ready:
        """Deliver what this peer sent itself, ack under ``majority``, hand the rest over (``hold``: keep frames)."""
        master = self.master
        if not hold:
            self._guard(self.me, "censorship", check_censorship, self)
        if master is not None and master.waiting.for_lease and self.election.can_confirm(self._now):
            self._guard(self.me, "waiting", lambda: self._effects(master.tick(self._master_clock, lease=True)))
        while True:
            while self.outbox.local:
                self._route(self.me, self.outbox.local.popleft())
            if self.majority:
                self._guard(self.me, "ack", self._ack)
            if not self.outbox.local and not hold and master is not None and self.master is master:
                self._effects(master.seal())  # the heads this step changed, after its entries
            if not self.outbox.local:
                break
        if not hold:
            self._guard(self.me, "endorse", self._endorse_outgoing)
            self._send_witness()
        if not hold:  # only a step changes a core: its timers are read once per full step (a held one is
            current = self.master  # a dispatch, which a full step follows before any timer is due)
            recovery, due = (None, None) if current is None else (current.deadline, current.due)
            client = _earliest(self.client.deadline, self._acks.due(self.client.committed))
            self._timers = (self.election.deadline, client, recovery, due)
            self._deadline = self.next_deadline(self._now)
        ready = Ready(
            frames={},
            more=[],
            datagrams={},
            events=self._events,
            faults=self._faults,
            dropped=self._dropped,
            deadline=self._deadline,
        )
        self._events, self._faults, self._dropped = [], [], []
        if hold:
            return ready
        frames, more, datagrams = self.outbox.flush()
        ready.frames.update(frames)
        ready.more.extend(more)
        ready.datagrams.update(datagrams)
        return ready

    def _shared_bytes(self, message: wire.Message) -> bytes | None:
        """The bytes the master already encoded ``message`` to (a snapshot shared by its requesters), or None."""
        master = self.master
        return None if master is None else master.answers.shared.encoded(message)

    def _ack(self) -> None:
        """``majority``: tell the master how far this replica holds the log (again if its commit never counted it)."""
        master = self.client.master
        index = None if master is None else self._acks.take(self.client.index, self.client.committed, self._now)
        if index is not None and master is not None:
            self.outbox.send(master, rm.Ack(term=self.client.term, index=index))


# -- out of the class, which stays small ----------------------------------------------------------


def _earliest(*times: float | None) -> float | None:
    return min((t for t in times if t is not None), default=None)


def _verified(core: NodeCore, sender: PeerId, message: wire.Message) -> bool:
    """Does every signature ``message`` carries hold (``verify.screen``)? If not, it is dropped and reported."""
    refused, effects = screen(sender, message, core.verifier, core.client)
    if refused is None:
        return True
    core._dropped.append(Dropped(sender=sender, reason=refused))
    core._effects(effects)
    return False


# -- presence ----------------------------------------------------------------------------------------


def _on_intro(core: NodeCore, sender: PeerId, intro: Introduce) -> None:
    if sender in core.peers and sender not in core.members:
        _introduce(core, sender, intro)
    else:
        # ahead of its link's PeerUp, or a second one on a link: a restarted peer's new link,
        # whose PeerDown/PeerUp pair for the old link is still on its way
        core.roster.keep_early(sender, intro)


def _introduce(core: NodeCore, peer: PeerId, intro: Introduce) -> None:
    member, conflicts = core.roster.introduce(peer, intro)
    _roles_changed(core)
    core._events.append(PeerJoined(info=member))
    for name, version in sorted(conflicts.items()):
        core._events.append(
            TypeConflict(peer=peer, name=intro.name, type=name, ours=core.types[name].version, theirs=version)
        )


def _roles_changed(core: NodeCore) -> None:
    spectators = core.roster.spectators_changed()
    if spectators is not None:
        core._elect(el.Roles(spectators=spectators))


def _fair_seed(me: PeerId, rng: random.Random, entropy: Callable[[int], bytes] | None) -> bytes:
    """The seed of this peer's fair-draw chain: from ``entropy``; without it (tests), from ``rng``'s state
    (not drawn from it, so the numbers a seeded test's rng gives the election stay as they were)."""
    if entropy is not None:
        return entropy(32)
    return hashlib.blake2b(f"{me}:{rng.getstate()!r}".encode(), digest_size=32).digest()
