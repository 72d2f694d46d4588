"""Master election as a pure state machine: events in, effects out, time and randomness injected.

Raft's election half over our own links: terms, pre-vote, one vote per term, up-to-date votes,
ranked and randomized timeouts, heartbeats with acks (the lease), fencing, and handover
(Raft's TimeoutNow). See docs/election.md for the state diagram and the two quorum policies.

A term is won by votes only: each vote is signed (by the injected ``Signer``),
a master shows its certificate (the votes that elected it) in its heartbeats, and a peer follows
or steps down only for a certificate that is a quorum of the peers it sees; a term round moves
by one at most per vote; replies, acks and other messages never depose anyone; a handover needs
the master's signed grant; a candidate that won a vote and never showed a master is refused for
a while. docs/security.md says why each rule is there.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, assert_never

from ..ids import PeerId, Term
from .certificates import Certificates
from .churn import Churn
from .detector import LAG_AFTER, CatchUp
from .messages import (
    ElectionMessage,
    Heartbeat,
    HeartbeatAck,
    PreVoteReply,
    PreVoteRequest,
    TimeoutNow,
    View,
    VoteReply,
    VoteRequest,
)
from .room import MAX_MEMBERS, VIEW_EVERY, VIEW_GRACE, Room

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

    from ..signing import Signer, Verifier

__all__ = [
    "LAG_AFTER",
    "SALT_BITS",
    "VIEW_EVERY",
    "VIEW_GRACE",
    "Disconnected",
    "Distrust",
    "Effect",
    "ElectionConfig",
    "ElectionMachine",
    "Handover",
    "Input",
    "Joining",
    "Lagging",
    "LinksChanged",
    "LogPosition",
    "MasterChanged",
    "Policy",
    "Received",
    "Roles",
    "Send",
    "Standing",
    "StepAside",
    "Tick",
    "ToOthers",
    "salt_of",
    "term_owner_salt",
    "term_round",
]

SALT_BITS: Final = 32
"""Low bits of a term that name the peer that may campaign for it (see :func:`salt_of`)."""

_SALT_MASK: Final = (1 << SALT_BITS) - 1
MAX_ROUND: Final = 2**30
"""The highest election round (terms stay far below 2**63, so every int on the wire is bounded)."""
_ROUND_STEP: Final = 8
"""A vote request may be at most this many rounds past ours (a voter that missed rounds catches up)."""
_TOP_UP: Final = 0.2  # seconds between a master's requests for the votes of peers that do not follow it
_RIVAL: Final = 1.0  # seconds between two reactions to a rival master's claims


def salt_of(peer: PeerId) -> int:
    """The term salt of ``peer``: 32 bits of a hash of its id, never 0."""
    digest = hashlib.blake2b(peer.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") or 1


def term_round(term: Term) -> int:
    """The election round of ``term`` (its high bits)."""
    return term >> SALT_BITS


def term_owner_salt(term: Term) -> int:
    """The salt of the only peer that may campaign for ``term`` (0 for the initial term)."""
    return term & _SALT_MASK


# -- configuration ----------------------------------------------------------------------------


class Policy(enum.Enum):
    """Which group of peers may elect a master."""

    MAJORITY = "majority"
    """A majority of the membership (every peer ever connected minus graceful leavers)."""
    AVAILABLE = "available"
    """A majority of the currently connected group, self included: any connected group elects."""


class Standing(enum.Enum):
    """Where this peer stands in the current term (not the player/spectator ``Role`` of presence.py)."""

    FOLLOWER = enum.auto()
    CANDIDATE = enum.auto()
    MASTER = enum.auto()


@dataclass(frozen=True, slots=True, kw_only=True)
class ElectionConfig:
    """Policy and timing of the election; the defaults suit LAN games."""

    policy: Policy = Policy.AVAILABLE
    heartbeat_interval: float = 0.1
    """Seconds between master heartbeats."""
    election_timeout: float = 0.3
    """Silence from the master after which a follower suspects it; also the pre-vote refusal window."""
    rank_step: float = 0.05
    """Extra wait per rank, so the most up-to-date peer usually campaigns first."""
    jitter: float = 0.05
    """Upper bound of the uniform random extra wait drawn from the injected rng."""
    lease: float = 0.25
    """MAJORITY only: a master confirms until this long after sending the heartbeat its quorum acked."""
    member_expiry: float = 30.0
    """MAJORITY only: a member disconnected this long leaves the membership (``math.inf``: never)."""

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "election_timeout", "lease"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.rank_step < 0 or self.jitter < 0:
            raise ValueError("rank_step and jitter must not be negative")
        if self.heartbeat_interval >= self.election_timeout:
            raise ValueError("heartbeat_interval must be shorter than election_timeout")
        if not self.heartbeat_interval < self.lease <= self.election_timeout:
            raise ValueError("lease must be longer than heartbeat_interval and at most election_timeout")
        if not self.member_expiry > self.election_timeout:
            raise ValueError("member_expiry must be longer than election_timeout")


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """The driver's clock reached ``deadline``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """An election message arrived from ``sender``."""

    sender: PeerId
    message: ElectionMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class LinksChanged:
    """The set of OTHER peers with an open link changed; a peer missing from it is disconnected."""

    peers: frozenset[PeerId]


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected:
    """``peer`` disconnected; ``graceful`` when it said goodbye (it then leaves MAJORITY membership)."""

    peer: PeerId
    graceful: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class LogPosition:
    """This peer's replica now holds up to ``index`` of ``term`` (for the up-to-date vote rule)."""

    term: int
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Handover:
    """This peer is shutting down: if master, hand over to the most caught-up connected peer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Joining:
    """Peers of the room this peer knows of (discovered, or addresses it dials) with no link yet.

    Until this peer first knows a master, they count in the quorum: a peer that starts next to
    others does not elect itself before their links open, it joins the room that is there.
    """

    peers: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Distrust:
    """``peer`` was caught forging (a master that signed two histories, or an action its author never signed).

    It is never followed or voted for again in this session; if it is our master, we stop following it.
    """

    peer: PeerId


@dataclass(frozen=True, slots=True, kw_only=True)
class Roles:
    """The peers known to be spectators now: they never campaign and count in no vote or quorum."""

    spectators: frozenset[PeerId]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepAside:
    """Another process took this peer's place (its identity): stop being master; never campaign or vote again."""


Input = Tick | Received | LinksChanged | Disconnected | LogPosition | Handover | Joining | Roles | Distrust | StepAside

# -- effects ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send ``message`` to ``to`` (dropped by the driver if the link is closed)."""

    to: PeerId
    message: ElectionMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class ToOthers:
    """Send ``message`` to every other peer with an open link (the resources' ``fx.Publish`` includes this peer)."""

    message: ElectionMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class Lagging:
    """This replica is still behind where the master's log was ``LAG_AFTER`` ago: report again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MasterChanged:
    """The master became ``master`` in ``term`` (None: a new term's election runs until it is won).

    The election returns it as an effect; the node passes it on to the app as an event (``mx.MasterChanged``).
    """

    master: PeerId | None
    term: Term


Effect = Send | ToOthers | MasterChanged | Lagging

# -- the machine ------------------------------------------------------------------------------


class ElectionMachine:
    """Master election for one peer, with no I/O, no clock and no global randomness."""

    def __init__(
        self,
        me: PeerId,
        *,
        config: ElectionConfig,
        rng: random.Random,
        signer: Signer,
        verifier: Verifier,
        spectator: bool = False,
    ) -> None:
        """``signer`` (whose id is ``me``) signs votes and grants; ``verifier`` checks the others'.
        A ``spectator`` follows the master but never campaigns nor votes."""
        if signer.id != me:
            raise ValueError("signer.id must be the machine's own id")
        self._me = me
        self._spectator = spectator
        self._config = config
        self._rng = rng
        self._certs = Certificates(signer, verifier)  # our votes and grants, the certificates we checked
        self._seen_round = 0  # the highest round refusals told us of (bounded)
        self._distrusted: set[PeerId] = set()
        self._salt = salt_of(me)
        self._role = Standing.FOLLOWER
        self._term = Term(0)
        self._ballot = Term(0)  # the highest term we voted or campaigned in
        self._master: PeerId | None = None
        self._announced: tuple[PeerId | None, Term] = (None, Term(0))
        self._churn = Churn()  # masters that replaced one another lately: the patience backs off
        # who counts: links, the silent, spectators, the MAJORITY membership, what each link follows
        self._room = Room(me, available=config.policy is Policy.AVAILABLE, election_timeout=config.election_timeout)
        self._position: tuple[int, int] = (0, 0)
        self._successors: tuple[PeerId, ...] = ()
        self._now = -math.inf  # the time of the event being stepped
        self._asked_at: float | None = None  # when our current pre-vote round began
        # follower and candidate
        self._election_at: float | None = None
        self._proposal: Term | None = None  # pre-vote in progress for this term
        self._prevotes: set[PeerId] = set()
        self._votes: set[PeerId] = set()
        from .asks import Asks  # imported here: these modules import this one
        from .mastership import MasterDuties
        from .voting import Voter

        self._duty = MasterDuties(self)  # heartbeats, top-ups, handover, rivals: the master's side
        self._vote = Voter(self)  # the voting rules: which (pre-)votes this peer grants
        self._asks = Asks(self)  # the round's request, asked again of peers whose (pre-)vote is missing
        # startup and agreement
        self._settled = False  # a master (maybe this peer) was known once: joining is over
        self._view_at: float | None = None
        self._grace_used = False  # the election timer was given its one grace after a stall
        self._catch_up = CatchUp()

    # -- public surface --

    @property
    def me(self) -> PeerId:
        """This peer's id."""
        return self._me

    @property
    def role(self) -> Standing:
        """FOLLOWER, CANDIDATE or MASTER."""
        return self._role

    @property
    def term(self) -> Term:
        """The highest term seen."""
        return self._term

    @property
    def master(self) -> PeerId | None:
        """The master of the current term, if known (this peer when it is master)."""
        return self._master

    @property
    def config(self) -> ElectionConfig:
        """The configuration this machine runs with."""
        return self._config

    @property
    def deadline(self) -> float | None:
        """When the driver must send ``Tick()`` next, or None."""
        timers = [
            t
            for t in (self._election_at, self._duty.heartbeat_at, self._duty.handover_at, self._view_at, self._asks.at)
            if t is not None
        ]
        return min(timers) if timers else None

    def agreed(self, now: float) -> bool:
        """A master is known and every linked, responsive peer follows it in this term.

        A peer linked less than ``VIEW_GRACE`` ago must have said so; one that never says what it
        follows (an old version) is not waited for after that.
        """
        if self._master is None:
            return False
        return self._room.agreed(now, (self._term, self._master), self._room.connected - self._room.silent.keys())

    def can_confirm(self, now: float) -> bool:
        """May this peer act as master now? False for non-masters and, under MAJORITY, without a lease."""
        if self._role is not Standing.MASTER:
            return False
        if self._config.policy is Policy.AVAILABLE:
            return True
        return self._duty.handover_to is None and now < self._lease_until()

    def patience(self, now: float) -> float:
        """Silence after which a master is suspected: ``election_timeout``, doubled for each master that
        replaced another within ``CHURN_WINDOW`` (``CHURN_BACKOFF`` times at most)."""
        return self._config.election_timeout * self._churn.factor(now)

    def master_of(self, term: Term) -> PeerId | None:
        """The master of ``term`` if we know it: we followed it, or saw it hold votes of peers we know."""
        return self._certs.master_of(term)

    def has_quorum(self, voters: frozenset[PeerId]) -> bool:
        """Do ``voters`` (this peer counts only if listed) form a quorum under the policy now?"""
        return self._has_quorum(set(voters))

    def start(self, now: float) -> list[Effect]:
        """Begin as a follower: wait one election timeout to hear an existing master first."""
        self._arm_election(now)
        return []

    def step(self, event: Input, now: float) -> list[Effect]:
        """Feed one event; return the effects to execute, in order."""
        out: list[Effect] = []
        self._now = now
        match event:
            case Tick():
                self._on_tick(now, out)
            case Received(sender=sender, message=message):
                if sender != self._me and sender not in self._distrusted:
                    self._room.heard_from(sender, now)
                    self._on_message(sender, message, now, out)
            case LinksChanged(peers=peers):
                self._on_peers_changed(peers - {self._me}, now, out)
            case Disconnected(peer=peer, graceful=graceful):
                if graceful:
                    self._room.left(peer)
                    self._duty.beats.forget(peer)
                self._on_peers_changed(self._room.connected - {peer}, now, out)
            case LogPosition(term=term, index=index):
                self._position = (term, index)
                self._catch_up.reached(index)
            case Handover():
                self._duty.hand_over(now, out)
            case Distrust(peer=peer):
                if peer != self._me and len(self._distrusted) < MAX_MEMBERS:
                    self._distrusted.add(peer)
                if self._master == peer and peer != self._me:
                    self._step_down(self._term, now)
                    self._vote.sticky_until = -math.inf
                    self._arm_election(now, prompt=True)
            case Joining(peers=peers):
                if not self._settled:
                    self._room.joining = peers
                    self._recheck_quorum(now, out)
            case Roles(spectators=spectators):
                self._room.spectators = spectators - {self._me}
                self._recheck_quorum(now, out)
            case StepAside():
                self._spectator = True  # from now on it only follows, as a spectator does
                if self._role is not Standing.FOLLOWER or self._master == self._me:
                    self._step_down(self._term, now)
            case _:
                assert_never(event)
        if (self._master, self._term) != self._announced:
            self._announced = (self._master, self._term)
            if self._master is not None:
                self._settled, self._room.joining = True, frozenset()
                if self._churn.followed(self._master, now) and self._role is Standing.FOLLOWER:
                    self._arm_election(now)  # backed off from this heartbeat on
                    self._vote.sticky_until = max(self._vote.sticky_until, now + self.patience(now))
            out.insert(0, MasterChanged(master=self._master, term=self._term))
            self._tell_view(now, out)
        return out

    def _tell_view(self, now: float, out: list[Effect], to: Iterable[PeerId] | None = None) -> None:
        """Say what this peer follows (to ``to``, or to every linked peer), and again every VIEW_EVERY."""
        view = View(term=self._term, master=self._master)
        if to is None:
            out.append(ToOthers(message=view))
            self._view_at = now + VIEW_EVERY if self._room.connected else None
        else:
            out.extend(Send(to=peer, message=view) for peer in to)

    # -- timers --

    def _on_tick(self, now: float, out: list[Effect]) -> None:
        self._expire_members(now)
        self._vote.check_pending_vote(now)
        self._asks.tick(now, out)
        if self._duty.heartbeat_at is not None and now >= self._duty.heartbeat_at:
            self._duty.heartbeat(now, out)
        if self._duty.handover_at is not None and now >= self._duty.handover_at:
            self._duty.hand_over(now, out)  # the successor did not win in time: pick again
        if self._view_at is not None and now >= self._view_at:
            self._view_at = None
            if self._room.connected:
                self._tell_view(now, out)  # views are datagrams: say it again now and then
        if (
            self._election_at is not None
            and now - self._election_at > self._config.election_timeout / 2
            and not self._grace_used
        ):
            # The timer fired far later than due: this peer's own loop stalled, and what the
            # master sent meanwhile may wait unread. Look again once it had a chance to be read.
            self._grace_used = True
            self._election_at = now + self._config.heartbeat_interval
            return
        if self._election_at is not None and now >= self._election_at and self._spectator:
            self._arm_election(now)  # a spectator never campaigns: it only waits for a master
        elif self._election_at is not None and now >= self._election_at:
            # The master stays known while the pre-vote runs: a follower that missed a few
            # heartbeats (lost datagrams, a stalled loop) must not drop a master the others still
            # follow. The master changes only when a new term is won or a higher one is seen.
            self._room.suspect(now, self._master, self._asked_at)
            self._pre_vote(now, out)

    def _arm_election(self, now: float, *, prompt: bool = False) -> None:
        self._grace_used = False
        cfg = self._config
        wait = self._rank() * cfg.rank_step + self._rng.uniform(0.0, cfg.jitter)
        self._election_at = max(now + wait, self._vote.sticky_until) if prompt else now + self.patience(now) + wait

    def _rank(self) -> int:
        order = [p for p in self._successors if p in self._room.connected or p == self._me]
        if self._me in order:
            return order.index(self._me)
        return sorted((self._room.connected - self._room.spectators) | {self._me}).index(self._me)

    # -- quorum, terms, lease --

    def _group(self) -> set[PeerId] | frozenset[PeerId]:
        return self._room.group()

    def _has_quorum(self, voters: set[PeerId]) -> bool:
        return self._room.has_quorum(voters, self._now)

    def _next_term(self) -> Term:
        round_ = min(max(term_round(self._ballot), self._seen_round) + 1, MAX_ROUND)
        return Term((round_ << SALT_BITS) | self._salt)

    def _lease_until(self) -> float:
        return self._duty.beats.lease_until(self._room.members - self._room.spectators, self._config.lease)

    def _expire_members(self, now: float) -> None:
        """MAJORITY: members gone longer than ``member_expiry`` leave (ids that come and go cannot pile up)."""
        self._duty.beats.keep_only(self._room.members | self._room.connected)
        for peer in self._room.expire(now, self._config.member_expiry):
            self._duty.beats.forget(peer)

    # -- certificates --

    def _voters(self, term: Term, master: PeerId, cert: tuple[bytes, ...]) -> set[PeerId]:
        """The distinct peers of our view whose valid signed votes for ``master`` in ``term`` ``cert`` holds."""
        return self._certs.voters(term, master, cert, self._group() | self._room.connected | {master})

    def _quorum_of(self, voters: set[PeerId]) -> bool:
        """Do ``voters`` form a quorum of our group (counting ourselves only while we follow a master)?"""
        return self._room.quorum_of(voters, following=self._master is not None)

    def _certified(self, term: Term, master: PeerId, cert: tuple[bytes, ...]) -> bool:
        """Is ``master`` the winner of ``term`` by a quorum of votes (checked once per term)?"""
        if self._certs.trusted.get(term) == master:
            return True
        if term_round(term) > MAX_ROUND or (term & _SALT_MASK) != salt_of(master):
            return False
        if not self._quorum_of(self._voters(term, master, cert)):
            return False
        self._certs.trust(term, master)
        return True

    def _own_cert_holds(self) -> bool:
        """As master: is our certificate a quorum of the group we see now?"""
        return self._quorum_of(set(self._certs.won))

    def _learn_round(self, term: Term) -> None:
        """A refusal told of a newer round: our next campaign goes past it (at most two rounds past ours)."""
        self._seen_round = max(self._seen_round, min(term_round(term), term_round(self._ballot) + 2))

    # -- transitions --

    def _step_down(self, term: Term, now: float, master: PeerId | None = None) -> None:
        if term > self._term:
            self._term = term
            self._certs.won = {}
        if term > self._ballot:
            self._ballot = term
            self._vote.voted_for = None
        self._role = Standing.FOLLOWER
        self._master = master
        self._proposal = None
        self._prevotes.clear()
        self._votes.clear()
        self._duty.heartbeat_at = None
        self._duty.beats.reset()
        self._duty.handover_to = None
        self._duty.handover_at = None
        self._duty.handover_tried.clear()
        self._arm_election(now)

    def _follow_elsewhere(self, now: float) -> bool:
        """Do most of my linked peers follow, and lately said so, a master I have no link to?

        Then that master is alive for them, and my campaign could only depose it: I wait for a
        link to it instead (the mesh is still forming, or one link of it is down).
        """
        group = self._group() - {self._me}
        return self._room.follow_elsewhere(now, group, self._me, self._room.connected, self._term)

    def _pre_vote(self, now: float, out: list[Effect]) -> None:
        if self._role is Standing.FOLLOWER and self._follow_elsewhere(now):
            self._arm_election(now)
            return
        self._role = Standing.FOLLOWER
        self._asked_at = now
        self._proposal = self._next_term()
        self._prevotes = {self._me}
        self._arm_election(now)
        if self._has_quorum(self._prevotes):
            self._campaign(now, out, handover=False)
            return
        last_term, last_index = self._position
        self._asks.start(PreVoteRequest(term=self._proposal, last_term=last_term, last_index=last_index), now, out)

    def _campaign(self, now: float, out: list[Effect], *, handover: bool, grant: bytes = b"") -> None:
        if self._spectator:
            return
        # The term peers see (and fence with) moves only to a won term: a lost campaign leaves
        # it as it was, so the winner of the same round is followed even if its term is lower.
        self._ballot = self._next_term()
        self._role = Standing.CANDIDATE
        self._master = None
        self._duty.heartbeat_at = None  # a master running again (a healed partition) is no master meanwhile
        self._duty.handover_to = self._duty.handover_at = None
        self._vote.voted_for = self._me
        self._votes = {self._me}
        self._certs.won = {self._me: self._certs.vote(self._ballot, self._me)}
        self._proposal = None
        self._prevotes.clear()
        self._arm_election(now)
        if self._has_quorum(self._votes):
            self._become_master(now, out)
            return
        last_term, last_index = self._position
        message = VoteRequest(
            term=self._ballot, last_term=last_term, last_index=last_index, handover=handover, grant=grant
        )
        self._asks.start(message, now, out)

    def _become_master(self, now: float, out: list[Effect]) -> None:
        self._term = self._ballot
        self._role = Standing.MASTER
        self._master = self._me
        self._certs.trust(self._term, self._me)
        self._election_at = None
        self._asked_at = None
        self._duty.beats.reset()
        self._duty.handover_to = None
        self._duty.handover_at = None
        self._duty.handover_tried.clear()
        self._duty.top_up_at = -math.inf  # at once: peers that did not vote may not find our certificate enough
        self._duty.heartbeat(now, out)

    def _recheck_quorum(self, now: float, out: list[Effect]) -> None:
        if self._proposal is not None and self._has_quorum(self._prevotes):
            self._campaign(now, out, handover=False)
        elif self._role is Standing.CANDIDATE and self._has_quorum(self._votes):
            self._become_master(now, out)

    # -- events --

    def _on_peers_changed(self, peers: frozenset[PeerId], now: float, out: list[Effect]) -> None:
        gone, new = self._room.links_changed(peers, now)
        self._expire_members(now)
        if self._role is Standing.MASTER:
            if new:
                hello = self._duty.heartbeat_message()
                out.extend(Send(to=peer, message=hello) for peer in sorted(new))
        elif self._master is not None and self._master in gone:
            self._master = None
            if self._config.policy is Policy.AVAILABLE:
                self._vote.sticky_until = -math.inf  # no lease to honour: elect at once
            self._arm_election(now, prompt=True)
        if new:
            self._tell_view(now, out, to=sorted(new))
            if self._view_at is None:
                self._view_at = now + VIEW_EVERY
        self._recheck_quorum(now, out)

    def _on_message(self, sender: PeerId, message: ElectionMessage, now: float, out: list[Effect]) -> None:
        match message:
            case Heartbeat():
                self._on_heartbeat(sender, message, now, out)
            case HeartbeatAck():
                self._duty.on_heartbeat_ack(sender, message, now, out)
            case PreVoteRequest():
                self._vote.on_pre_vote_request(sender, message, now, out)
            case PreVoteReply():
                self._on_pre_vote_reply(sender, message, now, out)
            case VoteRequest():
                self._vote.on_vote_request(sender, message, now, out)
            case VoteReply():
                self._on_vote_reply(sender, message, now, out)
            case TimeoutNow():
                self._on_timeout_now(sender, message, now, out)
            case View(term=term, master=master):
                if sender in self._room.connected:
                    self._room.view(sender, term, master, now)
            case _:
                assert_never(message)

    def _ack(self, term: Term, seq: int) -> HeartbeatAck:
        last_term, last_index = self._position
        cert: tuple[bytes, ...] = ()
        leader = ""
        known = self._certs.known
        if self._certs.trusted.get(term) == self._me:  # a term we won (and maybe left)
            cert, leader = self._certs.proofs(), self._me
        elif known is not None and known[0] == term:
            _, leader, cert = known
        return HeartbeatAck(term=term, seq=seq, last_term=last_term, last_index=last_index, cert=cert, leader=leader)

    def _on_heartbeat(self, sender: PeerId, message: Heartbeat, now: float, out: list[Effect]) -> None:
        term = message.term
        if term < self._term:  # a stale master: tell it our term (and its certificate)
            out.append(Send(to=sender, message=self._ack(self._term, message.seq)))
            if self._role is Standing.MASTER:
                self._duty.rival(sender, message, now, out)
            return
        # Two masters of one term only happen on a salt collision: the lower id keeps it
        # (a master is its own master, so this also covers a master hearing a rival).
        if term == self._term and self._master is not None and sender > self._master:
            return
        if not (term == self._term and self._master == sender):
            if not self._certified(term, sender, message.cert):
                if self._role is Standing.MASTER:
                    self._duty.rival(sender, message, now, out)
                return  # no quorum voted for it, as far as we can see: not our master
            self._certs.known = (term, sender, message.cert)
        if term > self._term or self._role is not Standing.FOLLOWER or self._master != sender:
            self._step_down(term, now, master=sender)
        self._vote.sticky_until = now + self.patience(now)
        self._successors = message.successors
        self._asked_at = None
        self._proposal = None
        self._prevotes.clear()
        self._arm_election(now)
        out.append(Send(to=sender, message=self._ack(self._vote.lendable(term, now), message.seq)))
        if self._catch_up.lagging(message.index, self._position[1], now):
            out.append(Lagging())

    def _on_pre_vote_reply(self, sender: PeerId, message: PreVoteReply, now: float, out: list[Effect]) -> None:
        if message.granted:
            if self._proposal is not None and message.term == self._proposal and sender not in self._room.spectators:
                self._prevotes.add(sender)
                if self._has_quorum(self._prevotes):
                    self._campaign(now, out, handover=False)
        elif message.term > self._ballot:
            self._learn_round(message.term)  # a refusal proves nothing: our next round goes past it

    def _on_vote_reply(self, sender: PeerId, message: VoteReply, now: float, out: list[Effect]) -> None:
        if message.term > self._ballot:
            self._learn_round(message.term)
            if self._role is Standing.MASTER and not self._own_cert_holds() and now >= self._duty.rival_at + _RIVAL:
                # a peer of our group is past our term and our votes are not a quorum of the group
                # as it is now (it was silent when we won): run again above its round, with its vote
                self._duty.rival_at = now
                self._campaign(now, out, handover=False)
            return
        if message.term != self._ballot or not message.granted or self._role is Standing.FOLLOWER:
            return
        if sender in self._room.spectators:
            return  # a spectator's vote counts for nothing
        if self._certs.voter(message.proof, self._ballot, self._me) != sender:
            return  # an unsigned or forged vote counts for nothing
        self._certs.won[sender] = message.proof  # late votes join a master's certificate too
        if self._role is Standing.CANDIDATE:
            self._votes.add(sender)
            if self._has_quorum(self._votes):
                self._become_master(now, out)

    def _on_timeout_now(self, sender: PeerId, message: TimeoutNow, now: float, out: list[Effect]) -> None:
        # only our own master may hand over to us, and only with its signed grant
        if (
            message.term == self._term
            and self._master == sender
            and self._role is Standing.FOLLOWER
            and self._certs.granter(message.grant, self._term, self._me) == sender
        ):
            self._campaign(now, out, handover=True, grant=message.grant)
