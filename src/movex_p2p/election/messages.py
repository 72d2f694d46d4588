"""Election wire messages: one frozen dataclass each, every one carrying ``term``.

The sender of a message is the authenticated link it arrived on (``Received.sender``), so no
message names its own sender. What a peer must be able to show to others is signed: a granted
vote carries the voter's proof, a master's heartbeat carries its certificate (the proofs of the
votes that elected it), a handover carries the old master's signed grant (``movex_p2p.proofs``).
Tags 60-79 belong to the election; append, never renumber.
Every election message takes :attr:`Route.ELECTION` and travels on the datagram lane: each is
small, idempotent and loss-tolerant (heartbeats repeat, a lost vote is asked for again at the
next timeout), and must never wait behind a large state on the reliable lane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, get_args

from ..ids import PeerId, Term
from ..routes import Lane, Route

__all__ = [
    "LANES",
    "MESSAGES",
    "ROUTES",
    "ElectionMessage",
    "Heartbeat",
    "HeartbeatAck",
    "PreVoteReply",
    "PreVoteRequest",
    "TimeoutNow",
    "View",
    "VoteReply",
    "VoteRequest",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """The master of ``term`` is alive; ``successors`` ranks its connected peers, best first.

    ``cert`` holds the signed votes that won ``term`` for the sender: a peer follows a master
    only when they form a quorum (docs/security.md).
    ``index`` is how far the master's own log reached: a follower that has not caught up with it
    a while later missed something (a link that broke and came back) and reports again.
    """

    term: Term
    seq: int
    successors: tuple[PeerId, ...]
    cert: tuple[bytes, ...] = ()
    index: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatAck:
    """A follower of ``term`` got heartbeat ``seq`` and reports its replica position; fences stale masters."""

    term: Term
    seq: int
    last_term: int
    last_index: int
    cert: tuple[bytes, ...] = ()
    """When ``term`` is newer than the heartbeat's: the certificate of ``term`` (won by ``leader``),
    so the master can see it is real and run for the round above (a healed partition)."""
    leader: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PreVoteRequest:
    """Would you vote for me in the proposed ``term``? Changes no state at the receiver (Raft pre-vote)."""

    term: Term
    last_term: int
    last_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PreVoteReply:
    """Answer to a pre-vote: ``term`` echoes the proposal when granted, else is the voter's own term."""

    term: Term
    granted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteRequest:
    """Vote for me as master of ``term``; ``handover`` is set when the old master asked me to run."""

    term: Term
    last_term: int
    last_index: int
    handover: bool
    grant: bytes = b""
    """With ``handover``: the old master's signed grant naming the candidate (its TimeoutNow's)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteReply:
    """Answer to a vote request in ``term`` (one vote per term per peer)."""

    term: Term
    granted: bool
    proof: bytes = b""
    """With ``granted``: the voter's signature of its vote (a part of the winner's certificate)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow:
    """The master of ``term`` is leaving and names the receiver its successor: run an election now."""

    term: Term
    grant: bytes = b""
    """The master's signed grant naming the receiver, shown to voters with the VoteRequest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    """The sender follows ``master`` (None: none known) in ``term``: how linked peers tell they agree."""

    term: Term
    master: PeerId | None


ElectionMessage = Heartbeat | HeartbeatAck | PreVoteRequest | PreVoteReply | VoteRequest | VoteReply | TimeoutNow | View

ROUTES: Final[dict[type[ElectionMessage], Route]] = dict.fromkeys(get_args(ElectionMessage), Route.ELECTION)
"""Every election message goes to the ElectionMachine."""

LANES: Final[dict[type[ElectionMessage], Lane]] = dict.fromkeys(get_args(ElectionMessage), Lane.DATAGRAM)
"""Every election message travels on the datagram lane (see the module docstring)."""

MESSAGES: Final[dict[int, type[ElectionMessage]]] = {
    60: Heartbeat,
    61: HeartbeatAck,
    62: PreVoteRequest,
    63: PreVoteReply,
    64: VoteRequest,
    65: VoteReply,
    66: TimeoutNow,
    67: View,
}
"""Wire tags: append, never renumber."""
