"""Master election as a pure state machine: events in, effects out, time and randomness injected.

Raft's election half over our own links: terms, pre-vote, one vote per term, up-to-date votes,
ranked and randomized timeouts, heartbeats with acks (the lease), fencing, and handover
(Raft's TimeoutNow). See docs/election.md for the state diagram and the two quorum policies.
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, assert_never

from ..ids import PeerId, Term
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

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable

__all__ = [
    "LAG_AFTER",
    "SALT_BITS",
    "VIEW_EVERY",
    "VIEW_GRACE",
    "Broadcast",
    "Effect",
    "ElectionConfig",
    "ElectionMachine",
    "Handover",
    "Input",
    "Joining",
    "Lagging",
    "LinksChanged",
    "LogPosition",
    "MasterKnown",
    "Observed",
    "PeerLeft",
    "Policy",
    "Received",
    "Role",
    "Roles",
    "Send",
    "Tick",
    "salt_of",
    "term_owner_salt",
    "term_round",
]

SALT_BITS: Final = 32
"""Low bits of a term that name the peer that may campaign for it (see :func:`salt_of`)."""

_SALT_MASK: Final = (1 << SALT_BITS) - 1
_SENT_KEPT: Final = 64  # heartbeat send times remembered for matching acks

LAG_AFTER: Final = 1.0
"""Seconds a follower may stay behind the log index a master's heartbeat named before it reports again."""

_SILENT_COUNTS: Final = 1
"""Election timeouts a silent peer still counts in the size of the AVAILABLE group (it cannot vote)."""

VIEW_EVERY: Final = 1.0
"""Seconds between two :class:`View` datagrams to every linked peer (also sent at each change)."""
VIEW_GRACE: Final = 1.0
"""Seconds a new link has to say what it follows before :meth:`ElectionMachine.agreed` stops waiting for it."""


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


class Role(enum.Enum):
    """This peer's role in the current term."""

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
class PeerLeft:
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
class Observed:
    """A non-election message carried ``term``; a higher term fences us (a master steps down)."""

    term: Term


@dataclass(frozen=True, slots=True, kw_only=True)
class Roles:
    """The peers known to be spectators now: they never campaign and count in no vote or quorum."""

    spectators: frozenset[PeerId]


Input = Tick | Received | LinksChanged | PeerLeft | LogPosition | Handover | Observed | Joining | Roles

# -- effects ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send ``message`` to ``to`` (dropped by the driver if the link is closed)."""

    to: PeerId
    message: ElectionMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast:
    """Send ``message`` to every peer with an open link."""

    message: ElectionMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class Lagging:
    """This replica is still behind where the master's log was ``LAG_AFTER`` ago: report again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MasterKnown:
    """The known master or term changed; ``master`` is None from a new term's campaign until it is won."""

    master: PeerId | None
    term: Term


Effect = Send | Broadcast | MasterKnown | Lagging

# -- the machine ------------------------------------------------------------------------------


class ElectionMachine:
    """Master election for one peer, with no I/O, no clock and no global randomness."""

    def __init__(self, me: PeerId, *, config: ElectionConfig, rng: random.Random, spectator: bool = False) -> None:
        """A ``spectator`` follows the master but never campaigns nor votes."""
        self._me = me
        self._spectator = spectator
        self._spectators: frozenset[PeerId] = frozenset()  # the OTHER peers known to be spectators
        self._config = config
        self._rng = rng
        self._salt = salt_of(me)
        self._role = Role.FOLLOWER
        self._term = Term(0)
        self._master: PeerId | None = None
        self._voted_for: PeerId | None = None
        self._announced: tuple[PeerId | None, Term] = (None, Term(0))
        self._connected: frozenset[PeerId] = frozenset()
        self._members: set[PeerId] = {me}
        self._position: tuple[int, int] = (0, 0)
        self._sticky_until = -math.inf  # refuse (pre-)votes until then: a live master was heard
        self._successors: tuple[PeerId, ...] = ()
        self._heard: dict[PeerId, float] = {}  # when anything last arrived from each peer
        self._now = -math.inf  # the time of the event being stepped
        self._silent: dict[PeerId, float] = {}  # connected but unresponsive (since when): cannot vote
        self._asked_at: float | None = None  # when our current pre-vote round began
        # follower and candidate
        self._election_at: float | None = None
        self._proposal: Term | None = None  # pre-vote in progress for this term
        self._prevotes: set[PeerId] = set()
        self._votes: set[PeerId] = set()
        # master
        self._heartbeat_at: float | None = None
        self._seq = 0
        self._sent: dict[int, float] = {}
        self._acked: dict[PeerId, float] = {}  # send time of the latest heartbeat each peer acked
        self._positions: dict[PeerId, tuple[int, int]] = {}
        self._handover_to: PeerId | None = None
        self._handover_at: float | None = None
        self._handover_tried: set[PeerId] = set()
        # startup and agreement
        self._joining: frozenset[str] = frozenset()  # known, unlinked peers; they count until a master is known
        self._settled = False  # a master (maybe this peer) was known once: joining is over
        self._views: dict[PeerId, tuple[Term, PeerId | None]] = {}  # what each linked peer follows
        self._view_heard: dict[PeerId, float] = {}
        self._linked_at: dict[PeerId, float] = {}
        self._view_at: float | None = None
        self._grace_used = False  # the election timer was given its one grace after a stall
        self._catch_up: tuple[float, int] | None = None  # (when, index): the master's log reached index

    # -- public surface --

    @property
    def me(self) -> PeerId:
        """This peer's id."""
        return self._me

    @property
    def role(self) -> Role:
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
        timers = [t for t in (self._election_at, self._heartbeat_at, self._handover_at, self._view_at) if t is not None]
        return min(timers) if timers else None

    def agreed(self, now: float) -> bool:
        """A master is known and every linked, responsive peer follows it in this term.

        A peer linked less than ``VIEW_GRACE`` ago must have said so; one that never says what it
        follows (an old version) is not waited for after that.
        """
        if self._master is None:
            return False
        mine = (self._term, self._master)
        for peer in self._connected - self._silent.keys():
            view = self._views.get(peer)
            if view is None:
                if now - self._linked_at.get(peer, now) < VIEW_GRACE:
                    return False
            elif view != mine:
                return False
        return True

    def can_confirm(self, now: float) -> bool:
        """May this peer act as master now? False for non-masters and, under MAJORITY, without a lease."""
        if self._role is not Role.MASTER:
            return False
        if self._config.policy is Policy.AVAILABLE:
            return True
        return self._handover_to is None and now < self._lease_until()

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
                if sender != self._me:
                    self._heard[sender] = now
                    self._silent.pop(sender, None)
                    self._on_message(sender, message, now, out)
            case LinksChanged(peers=peers):
                self._on_peers_changed(peers - {self._me}, now, out)
            case PeerLeft(peer=peer, graceful=graceful):
                if graceful:
                    self._members.discard(peer)
                    self._positions.pop(peer, None)
                    self._acked.pop(peer, None)
                self._on_peers_changed(self._connected - {peer}, now, out)
            case LogPosition(term=term, index=index):
                self._position = (term, index)
                if self._catch_up is not None and index >= self._catch_up[1]:
                    self._catch_up = None
            case Handover():
                self._hand_over(now, out)
            case Observed(term=term):
                if term > self._term:
                    self._step_down(term, now)
            case Joining(peers=peers):
                if not self._settled:
                    self._joining = peers
                    self._recheck_quorum(now, out)
            case Roles(spectators=spectators):
                self._spectators = spectators - {self._me}
                self._recheck_quorum(now, out)
            case _:
                assert_never(event)
        if (self._master, self._term) != self._announced:
            self._announced = (self._master, self._term)
            if self._master is not None:
                self._settled, self._joining = True, frozenset()
            out.insert(0, MasterKnown(master=self._master, term=self._term))
            self._tell_view(now, out)
        return out

    def _tell_view(self, now: float, out: list[Effect], to: Iterable[PeerId] | None = None) -> None:
        """Say what this peer follows (to ``to``, or to every linked peer), and again every VIEW_EVERY."""
        view = View(term=self._term, master=self._master)
        if to is None:
            out.append(Broadcast(message=view))
            self._view_at = now + VIEW_EVERY if self._connected else None
        else:
            out.extend(Send(to=peer, message=view) for peer in to)

    # -- timers --

    def _on_tick(self, now: float, out: list[Effect]) -> None:
        if self._heartbeat_at is not None and now >= self._heartbeat_at:
            self._heartbeat(now, out)
        if self._handover_at is not None and now >= self._handover_at:
            self._hand_over(now, out)  # the successor did not win in time: pick again
        if self._view_at is not None and now >= self._view_at:
            self._view_at = None
            if self._connected:
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
            self._suspect_silent_peers(now)
            self._pre_vote(now, out)

    def _suspect_silent_peers(self, now: float) -> None:
        # Called when the election timer fires: the master (if any) sent nothing for a whole
        # election timeout, and peers that answered nothing since our last pre-vote round began
        # are unresponsive. AVAILABLE leaves them out of the group until they speak again, so a
        # survivor whose transport has not yet noticed a death still elects.
        if self._master is not None:
            self._silent.setdefault(self._master, now)
        if self._asked_at is not None:
            asked_at = self._asked_at
            for p in self._connected:
                if self._heard.get(p, -math.inf) < asked_at:
                    self._silent.setdefault(p, now)

    def _arm_election(self, now: float, *, prompt: bool = False) -> None:
        self._grace_used = False
        cfg = self._config
        wait = self._rank() * cfg.rank_step + self._rng.uniform(0.0, cfg.jitter)
        self._election_at = max(now + wait, self._sticky_until) if prompt else now + cfg.election_timeout + wait

    def _rank(self) -> int:
        order = [p for p in self._successors if p in self._connected or p == self._me]
        if self._me in order:
            return order.index(self._me)
        return sorted((self._connected - self._spectators) | {self._me}).index(self._me)

    # -- quorum, terms, lease --

    def _group(self) -> set[PeerId] | frozenset[PeerId]:
        if self._config.policy is Policy.AVAILABLE:
            return (self._connected - self._silent.keys() - self._spectators) | {self._me}
        return self._members - self._spectators

    def _has_quorum(self, voters: set[PeerId]) -> bool:
        group = self._group()
        # joining: peers known but not linked yet count too (they cannot vote before they link)
        size = len(group) + len(self._joining.difference(group))
        if self._config.policy is Policy.AVAILABLE:
            # Silent peers cannot vote, but the recently silent still count: on a lossy Wi-Fi a few
            # heartbeats in a row go missing now and then, and a peer linked only to its master
            # would otherwise win alone and take the room. Silent longer, they are gone.
            counted = _SILENT_COUNTS * self._config.election_timeout
            size += sum(
                1
                for peer, since in self._silent.items()
                if self._now - since < counted and peer not in self._spectators and peer not in self._joining
            )
        return len(voters & group) > size // 2

    def _next_term(self) -> Term:
        return Term(((term_round(self._term) + 1) << SALT_BITS) | self._salt)

    def _lease_until(self) -> float:
        voters = self._members - self._spectators
        need = len(voters) // 2  # acks needed besides our own
        if need == 0:
            return math.inf
        times = sorted((t for p, t in self._acked.items() if p in voters), reverse=True)
        return times[need - 1] + self._config.lease if len(times) >= need else -math.inf

    def _sticky(self, now: float) -> bool:
        if self._role is Role.MASTER:
            return True
        if self._config.policy is Policy.AVAILABLE and (self._master is None or self._master not in self._connected):
            return False
        return now < self._sticky_until

    # -- transitions --

    def _step_down(self, term: Term, now: float, master: PeerId | None = None) -> None:
        if term > self._term:
            self._term = term
            self._voted_for = None
        self._role = Role.FOLLOWER
        self._master = master
        self._proposal = None
        self._prevotes.clear()
        self._votes.clear()
        self._heartbeat_at = None
        self._sent.clear()
        self._acked.clear()
        self._handover_to = None
        self._handover_at = None
        self._handover_tried.clear()
        self._arm_election(now)

    def _follow_elsewhere(self, now: float) -> bool:
        """Do most of my linked peers follow, and lately said so, a master I have no link to?

        Then that master is alive for them, and my campaign could only depose it: I wait for a
        link to it instead (the mesh is still forming, or one link of it is down).
        """
        group = self._group() - {self._me}
        if not group:
            return False
        elsewhere = 0
        for peer in group:
            view = self._views.get(peer)
            if view is None or now - self._view_heard.get(peer, -math.inf) > 2 * VIEW_EVERY:
                continue
            term, master = view
            if master is not None and master != self._me and master not in self._connected and term >= self._term:
                elsewhere += 1
        return elsewhere * 2 > len(group) + 1

    def _pre_vote(self, now: float, out: list[Effect]) -> None:
        if self._role is Role.FOLLOWER and self._follow_elsewhere(now):
            self._arm_election(now)
            return
        self._role = Role.FOLLOWER
        self._asked_at = now
        self._proposal = self._next_term()
        self._prevotes = {self._me}
        self._arm_election(now)
        if self._has_quorum(self._prevotes):
            self._campaign(now, out, handover=False)
            return
        last_term, last_index = self._position
        out.append(Broadcast(message=PreVoteRequest(term=self._proposal, last_term=last_term, last_index=last_index)))

    def _campaign(self, now: float, out: list[Effect], *, handover: bool) -> None:
        if self._spectator:
            return
        self._term = self._next_term()
        self._role = Role.CANDIDATE
        self._master = None
        self._voted_for = self._me
        self._votes = {self._me}
        self._proposal = None
        self._prevotes.clear()
        self._arm_election(now)
        if self._has_quorum(self._votes):
            self._become_master(now, out)
            return
        last_term, last_index = self._position
        message = VoteRequest(term=self._term, last_term=last_term, last_index=last_index, handover=handover)
        out.append(Broadcast(message=message))

    def _become_master(self, now: float, out: list[Effect]) -> None:
        self._role = Role.MASTER
        self._master = self._me
        self._election_at = None
        self._asked_at = None
        self._seq = 0
        self._sent.clear()
        self._acked.clear()
        self._handover_to = None
        self._handover_at = None
        self._handover_tried.clear()
        self._heartbeat(now, out)

    def _heartbeat(self, now: float, out: list[Effect]) -> None:
        self._seq += 1
        self._sent[self._seq] = now
        self._sent.pop(self._seq - _SENT_KEPT, None)
        self._heartbeat_at = now + self._config.heartbeat_interval
        out.append(Broadcast(message=self._heartbeat_message()))

    def _heartbeat_message(self) -> Heartbeat:
        return Heartbeat(term=self._term, seq=self._seq, successors=self._ranked_successors(), index=self._position[1])

    def _ranked_successors(self) -> tuple[PeerId, ...]:
        def key(peer: PeerId) -> tuple[int, int, PeerId]:
            last_term, last_index = self._positions.get(peer, (0, 0))
            return (-last_term, -last_index, peer)

        return tuple(sorted(self._connected - self._spectators, key=key))

    def _hand_over(self, now: float, out: list[Effect]) -> None:
        if self._role is not Role.MASTER:
            return
        ranked = self._ranked_successors()
        if not ranked:
            self._handover_at = None
            return
        untried = [p for p in ranked if p not in self._handover_tried]
        if not untried:  # every successor failed to win: start over from the best
            self._handover_tried.clear()
            untried = list(ranked)
        self._handover_to = untried[0]
        self._handover_tried.add(self._handover_to)
        self._handover_at = now + self._config.election_timeout
        out.append(Send(to=self._handover_to, message=TimeoutNow(term=self._term)))

    def _recheck_quorum(self, now: float, out: list[Effect]) -> None:
        if self._proposal is not None and self._has_quorum(self._prevotes):
            self._campaign(now, out, handover=False)
        elif self._role is Role.CANDIDATE and self._has_quorum(self._votes):
            self._become_master(now, out)

    # -- events --

    def _on_peers_changed(self, peers: frozenset[PeerId], now: float, out: list[Effect]) -> None:
        gone = self._connected - peers
        new = peers - self._connected
        self._connected = peers
        for peer in gone:
            self._views.pop(peer, None)
            self._view_heard.pop(peer, None)
            self._linked_at.pop(peer, None)
        for peer in new:
            self._linked_at[peer] = now
        self._members |= peers
        self._silent = {p: since for p, since in self._silent.items() if p in peers}
        if self._role is Role.MASTER:
            if new:
                hello = self._heartbeat_message()
                out.extend(Send(to=peer, message=hello) for peer in sorted(new))
        elif self._master is not None and self._master in gone:
            self._master = None
            if self._config.policy is Policy.AVAILABLE:
                self._sticky_until = -math.inf  # no lease to honour: elect at once
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
                self._on_heartbeat_ack(sender, message, now)
            case PreVoteRequest():
                self._on_pre_vote_request(sender, message, now, out)
            case PreVoteReply():
                self._on_pre_vote_reply(sender, message, now, out)
            case VoteRequest():
                self._on_vote_request(sender, message, now, out)
            case VoteReply():
                self._on_vote_reply(sender, message, now, out)
            case TimeoutNow():
                self._on_timeout_now(sender, message, now, out)
            case View(term=term, master=master):
                if sender in self._connected:
                    self._views[sender] = (term, master)
                    self._view_heard[sender] = now
            case _:
                assert_never(message)

    def _ack(self, term: Term, seq: int) -> HeartbeatAck:
        last_term, last_index = self._position
        return HeartbeatAck(term=term, seq=seq, last_term=last_term, last_index=last_index)

    def _on_heartbeat(self, sender: PeerId, message: Heartbeat, now: float, out: list[Effect]) -> None:
        term = message.term
        if term < self._term:  # a stale master: tell it our term so it steps down
            out.append(Send(to=sender, message=self._ack(self._term, message.seq)))
            return
        # Two masters of one term only happen on a salt collision: the lower id keeps it
        # (a master is its own master, so this also covers a master hearing a rival).
        if term == self._term and self._master is not None and sender > self._master:
            return
        if term > self._term or self._role is not Role.FOLLOWER or self._master != sender:
            self._step_down(term, now, master=sender)
        self._sticky_until = now + self._config.election_timeout
        self._successors = message.successors
        self._asked_at = None
        self._proposal = None
        self._prevotes.clear()
        self._arm_election(now)
        out.append(Send(to=sender, message=self._ack(term, message.seq)))
        self._check_lag(message.index, now, out)

    def _check_lag(self, master_index: int, now: float, out: list[Effect]) -> None:
        """Entries take milliseconds to arrive: still short of an index the master had long ago, we missed some."""
        mine = self._position[1]
        if self._catch_up is None:
            if master_index > mine:
                self._catch_up = (now, master_index)
        elif mine >= self._catch_up[1]:
            self._catch_up = (now, master_index) if master_index > mine else None
        elif now - self._catch_up[0] >= LAG_AFTER:
            self._catch_up = None
            out.append(Lagging())

    def _on_heartbeat_ack(self, sender: PeerId, message: HeartbeatAck, now: float) -> None:
        if message.term > self._term:
            self._step_down(message.term, now)
            return
        if message.term < self._term or self._role is not Role.MASTER:
            return
        self._positions[sender] = (message.last_term, message.last_index)
        sent = self._sent.get(message.seq)
        if sent is not None and sent > self._acked.get(sender, -math.inf):
            self._acked[sender] = sent

    def _on_pre_vote_request(self, sender: PeerId, message: PreVoteRequest, now: float, out: list[Effect]) -> None:
        grant = (
            not self._spectator
            and message.term > self._term
            and (message.last_term, message.last_index) >= self._position
            and not self._sticky(now)
        )
        reply = PreVoteReply(term=message.term if grant else self._term, granted=grant)
        out.append(Send(to=sender, message=reply))

    def _on_pre_vote_reply(self, sender: PeerId, message: PreVoteReply, now: float, out: list[Effect]) -> None:
        if message.granted:
            if self._proposal is not None and message.term == self._proposal and sender not in self._spectators:
                self._prevotes.add(sender)
                if self._has_quorum(self._prevotes):
                    self._campaign(now, out, handover=False)
        elif message.term > self._term:
            self._step_down(message.term, now)

    def _on_vote_request(self, sender: PeerId, message: VoteRequest, now: float, out: list[Effect]) -> None:
        if message.term < self._term:
            out.append(Send(to=sender, message=VoteReply(term=self._term, granted=False)))
            return
        if not message.handover and self._sticky(now):
            return  # a live master exists: ignore the disruption (Raft §9.6)
        chosen = self._handover_to == sender  # our own successor: it need not be as up to date as us
        if message.term > self._term:
            self._step_down(message.term, now)
        up_to_date = (message.last_term, message.last_index) >= self._position
        grant = not self._spectator and self._voted_for in (None, sender) and (up_to_date or chosen)
        if grant:
            self._voted_for = sender
            self._arm_election(now)
        out.append(Send(to=sender, message=VoteReply(term=self._term, granted=grant)))

    def _on_vote_reply(self, sender: PeerId, message: VoteReply, now: float, out: list[Effect]) -> None:
        if message.term > self._term:
            self._step_down(message.term, now)
        elif (
            message.term == self._term
            and message.granted
            and self._role is Role.CANDIDATE
            and sender not in self._spectators
        ):
            self._votes.add(sender)
            if self._has_quorum(self._votes):
                self._become_master(now, out)

    def _on_timeout_now(self, sender: PeerId, message: TimeoutNow, now: float, out: list[Effect]) -> None:
        if message.term > self._term:
            self._step_down(message.term, now, master=sender)
        if message.term == self._term and self._master == sender and self._role is Role.FOLLOWER:
            self._campaign(now, out, handover=True)
