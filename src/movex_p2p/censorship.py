"""Proof of censorship: an author's proposal its master leaves unconfirmed, gossiped and watched (pure).

An action still unconfirmed when its author reports it stuck (``Peer(stuck_after=...)`` twice over)
is sent by its author to every peer as an :class:`Unconfirmed`: the whole proposal (public half,
and a sealed type's commitment) with the author's endorsement of it and a signature binding it to
the room, the term and the master, so it is never evidence against another master or in another
room. Each peer that takes it forwards it to the master itself: an honest master, handed a proposal
its author signed, applies it (or, if its reducer refuses it, answers :class:`Declined`). A peer
reports the master (:class:`Censored`) when, ``grace`` seconds after it forwarded the proposal over
a working link, the proposal is still not settled in its replica although the master confirmed at
least :data:`CONFIRMATIONS` other actions on that resource meanwhile, the author is still linked,
and the reducer accepts the action on the replica's state as it is now (an action the master
could rightly refuse proves nothing). See docs/security.md ("Proof of censorship") and
docs/election.md for the policy (``distrust`` the master, by default, or only ``report``).

Evidence is only taken for what a peer can check alone: proposals without a master-held private
half (public actions and sealed pairs) and without ``mx.master``/``mx.fair`` values. Every map is
bounded: :data:`OPEN_PER_AUTHOR` proposals per linked author, forgotten when the master changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Literal, get_args

from .errors import InvalidState
from .ids import PeerId, Rid, Term
from .proofs import prove, signer
from .resource.history import DIGEST_SIZE, action_digest
from .resource.messages import Endorse, Propose
from .resource.state import size_of
from .resource.types import Action, ResourceType
from .resource.values import has_fair_values, has_master_values
from .routes import Lane, Route

if TYPE_CHECKING:
    from .resource.replica import Replica
    from .signing import Signer, Verifier

__all__ = [
    "CONFIRMATIONS",
    "GRACE",
    "LANES",
    "MESSAGES",
    "OPEN_PER_AUTHOR",
    "POLICIES",
    "ROUTES",
    "CensorMessage",
    "CensorWatch",
    "Censored",
    "Declined",
    "Policy",
    "Unconfirmed",
    "author_of",
    "grievance",
    "proposal_of",
]

GRACE: Final = 5.0
"""Seconds a peer gives the master after forwarding it an author's unconfirmed proposal (the stuck bound)."""
CONFIRMATIONS: Final = 2
"""Other actions the master must confirm on the resource meanwhile: it was serving, not stalled."""
OPEN_PER_AUTHOR: Final = 8
"""Unconfirmed proposals a peer watches per author (one per stuck resource, usually)."""

Policy = Literal["distrust", "report"]
"""What a peer does once it sees censorship: ``distrust`` the master (steps down from it, votes for
another) and report it, or only ``report`` it."""
POLICIES: Final[tuple[Policy, ...]] = get_args(Policy)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unconfirmed:
    """Author -> every peer -> master: ``author``'s proposal ``seq`` on ``rid`` that ``master`` leaves unconfirmed.

    ``endorsement``: the author's ``endorse`` proof over the action's digest (what the master republishes);
    ``proof``: the author's signature over (room, term, master, digest).
    """

    term: Term
    master: PeerId
    author: PeerId
    rid: Rid
    seq: int
    action: Action
    sealed: bytes = b""
    incarnation: bytes = b""
    """The incarnation of ``rid`` the author signed the action for."""
    endorsement: bytes
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Declined:
    """Master -> a peer that forwarded an :class:`Unconfirmed`: the master refused that action (``reason``)."""

    term: Term
    author: PeerId
    rid: Rid
    seq: int
    reason: str


CensorMessage = Unconfirmed | Declined
ROUTES: Final[dict[type[CensorMessage], Route]] = {Unconfirmed: Route.NODE, Declined: Route.NODE}
LANES: Final[dict[type[CensorMessage], Lane]] = {Unconfirmed: Lane.RELIABLE, Declined: Lane.RELIABLE}
MESSAGES: Final[dict[int, type[CensorMessage]]] = {90: Unconfirmed, 91: Declined}
"""Wire tags (90-99: censorship): append, never renumber."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Censored:
    """``master`` kept confirming other actions on ``rid`` and never ``author``'s ``seq``, handed to it."""

    master: PeerId
    author: PeerId
    rid: Rid
    seq: int
    seconds: float


def _digest(msg: Unconfirmed, room: str) -> bytes:
    """The digest the author signed for the action (``resource.history``: bound to room, term and incarnation)."""
    return action_digest(
        msg.author,
        msg.rid,
        msg.seq,
        msg.action,
        msg.sealed,
        room=room,
        term=msg.term,
        incarnation=msg.incarnation,
    )


def _statement(room: str, msg: Unconfirmed, digest: bytes) -> tuple[str, str, int, str, bytes]:
    return ("unconfirmed", room, msg.term, msg.master, digest)


def grievance(author: Signer, room: str, proposal: Propose, master: PeerId) -> Unconfirmed:
    """``author``'s signed :class:`Unconfirmed` for its ``proposal`` (one without a master-held private half)."""
    if proposal.private is not None:
        raise ValueError("a proposal whose private half goes to the master is no evidence others can check")
    msg = Unconfirmed(
        term=proposal.term,
        master=master,
        author=author.id,
        rid=proposal.rid,
        seq=proposal.seq,
        action=proposal.action,
        sealed=proposal.sealed,
        incarnation=proposal.incarnation,
        endorsement=b"",
        proof=b"",
    )
    digest = _digest(msg, room)
    return replace(
        msg, endorsement=prove(author, "endorse", digest), proof=prove(author, *_statement(room, msg, digest))
    )


def author_of(msg: Unconfirmed, room: str, verifier: Verifier) -> PeerId | None:
    """``msg.author`` if it signed both proofs of ``msg`` for ``room``, else None."""
    if msg.seq < 1 or (msg.sealed and len(msg.sealed) != DIGEST_SIZE):
        return None
    digest = _digest(msg, room)
    if signer(msg.endorsement, "endorse", digest, verifier=verifier) != msg.author:
        return None
    if signer(msg.proof, *_statement(room, msg, digest), verifier=verifier) != msg.author:
        return None
    return msg.author


def proposal_of(msg: Unconfirmed, room: str) -> tuple[Endorse, Propose]:
    """The author's Endorse and Propose that ``msg`` carries (for the master; every earlier seq is settled)."""
    endorse = Endorse(term=msg.term, digests=(_digest(msg, room),), proof=msg.endorsement)
    propose = Propose(
        term=msg.term,
        rid=msg.rid,
        seq=msg.seq,
        base=msg.seq - 1,
        action=msg.action,
        sealed=msg.sealed,
        incarnation=msg.incarnation,
    )
    return endorse, propose


def _acceptable(msg: Unconfirmed, res: Replica, type_: ResourceType) -> bool:
    """Would an honest master apply ``msg`` on ``res`` as it is now? (False: it could rightly refuse it.)"""
    if msg.incarnation != res.incarnation:
        return False  # signed for an earlier creation of the rid
    if msg.sealed and not type_.sealed:
        return False  # a commitment only a sealed type takes
    if has_master_values(msg.action.payload) or has_fair_values(msg.action.payload):
        return False  # resolved by the master: this peer cannot run what it would
    action = msg.action.by(msg.author)
    try:
        result = type_.reducer(res.state, action)
    except Exception:  # the app's reducer refuses it here: a master may refuse it too
        return False
    try:  # ours from here: a bug must surface, not read as a refusal
        state = type_.checked(res.state, result, action)
    except InvalidState:  # the app's result breaks the contract: a master refuses it too
        return False
    return bool(size_of(state) <= type_.max_bytes)


@dataclass(slots=True)
class _Watched:
    msg: Unconfirmed
    since: float
    version: int


class CensorWatch:
    """The unconfirmed proposals one peer watches for its current master, and its verdicts (pure)."""

    def __init__(self, me: PeerId, *, grace: float = GRACE, policy: Policy = "distrust") -> None:
        self.me = me
        self.grace = grace
        self.policy: Policy = policy
        self._open: dict[PeerId, dict[tuple[Rid, int], _Watched]] = {}  # per author
        self._master: PeerId | None = None
        self.censoring: set[PeerId] = set()
        """Masters this peer reported (each once)."""

    def hold(self, msg: Unconfirmed, now: float, version: int) -> bool:
        """Watch ``msg`` (checked, for our master and term) from ``now``; False if held already or over the bound."""
        if msg.master != self._master:
            self._open.clear()
            self._master = msg.master
        book = self._open.setdefault(msg.author, {})
        key = (msg.rid, msg.seq)
        if key in book or len(book) >= OPEN_PER_AUTHOR:
            return False
        book[key] = _Watched(msg, now, version)
        return True

    def declined(self, author: PeerId, rid: Rid, seq: int) -> None:
        """The master refused that action (its answer): no evidence."""
        book = self._open.get(author)
        if book is not None:
            book.pop((rid, seq), None)

    def forget(self, author: PeerId) -> None:
        """``author`` left: its proposals are no evidence any more."""
        self._open.pop(author, None)

    def reset(self) -> None:
        """The master changed: what the old one left undone is the new one's to do (its authors propose again)."""
        self._open.clear()
        self._master = None

    def check(
        self,
        now: float,
        master: PeerId | None,
        replicas: Mapping[Rid, Replica],
        types: Mapping[str, ResourceType],
        linked: frozenset[PeerId],
    ) -> list[Censored]:
        """The proposals that prove censorship now (each reported once); settled ones are forgotten."""
        if not self._open:
            return []
        if master is None or master != self._master or master not in linked:
            return []
        out: list[Censored] = []
        for author, book in list(self._open.items()):
            for key, watched in list(book.items()):
                msg = watched.msg
                res = replicas.get(msg.rid)
                if res is None or res.applied.get(author, 0) >= msg.seq:
                    del book[key]  # settled (applied, or skipped by a later one), or the resource is gone
                    continue
                type_ = types.get(res.type.name)
                if (author != self.me and author not in linked) or type_ is None:
                    continue
                if now < watched.since + self.grace or res.version < watched.version + CONFIRMATIONS:
                    continue
                if not _acceptable(msg, res, type_):
                    continue
                del book[key]
                out.append(
                    Censored(master=master, author=author, rid=msg.rid, seq=msg.seq, seconds=now - watched.since)
                )
            if not book:
                del self._open[author]
        return out
