"""What the resource cores ask their driver to do (:data:`Effect`) or tell the app (:data:`Notice`) (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ids import PeerId, Rid, Term
from .messages import Refusal, ResourceMessage, ToClients

__all__ = [
    "ActionSettled",
    "AppRaised",
    "DrawShort",
    "Effect",
    "Forged",
    "Notice",
    "OpeningForged",
    "PresenceChanged",
    "PrivateLost",
    "Publish",
    "Rebased",
    "RequestSettled",
    "ResourceRemoved",
    "ResyncStarted",
    "Send",
    "Stalled",
    "StateChanged",
    "Stuck",
    "Synced",
    "TermObserved",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send ``message`` to ``to`` (which may be this peer itself)."""

    to: PeerId
    message: ResourceMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class Publish:
    """Deliver ``message`` to every peer's ClientCore, this peer's own included (log entries)."""

    message: ToClients


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged:
    """The view of ``rid`` may have changed."""

    rid: Rid


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSettled:
    """Own action ``seq`` on ``rid`` was confirmed (``error`` None) or rejected (``cause``: what the app's
    reducer raised on this peer's view at the dispatch, if it did)."""

    rid: Rid
    seq: int
    error: str | None = None
    refusal: Refusal = "rejected"
    cause: Exception | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSettled:
    """Request ``req`` (create, bind or remove) was answered."""

    req: int
    rid: Rid
    error: str | None = None
    refusal: Refusal = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class PresenceChanged:
    """Subscribers of ``rid`` joined or left."""

    rid: Rid
    joined: dict[str, dict[str, Any]]
    left: tuple[PeerId, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResyncStarted:
    """``rid`` diverged from the master (``reason``); a snapshot was requested."""

    rid: Rid
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceRemoved:
    """``rid`` was removed from the room: its replica and own pending actions on it are gone."""

    rid: Rid


@dataclass(frozen=True, slots=True, kw_only=True)
class Stalled:
    """Own actions waited ``seconds`` on ``master`` with no progress and were sent again (a slow link?)."""

    master: PeerId
    seconds: float
    pending: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Stuck:
    """Own actions ``seqs`` on ``rid`` waited ``seconds`` with ``master`` known, were proposed again, and still wait."""

    rid: Rid
    seqs: tuple[int, ...]
    master: PeerId
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Rebased:
    """A new master's log lacked ``count`` own actions a previous master confirmed: they were re-sent.

    ``lost``: the seqs of own confirmed actions it lacks too that were no longer kept to re-send
    (confirmed before the last ``pending.KEEP_CONFIRMED`` and longer than ``KEEP_SECONDS`` ago).
    """

    rid: Rid
    count: int
    lost: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TermObserved:
    """A message from a term newer than ours arrived: the election should hear of it."""

    term: Term
    sender: PeerId


@dataclass(frozen=True, slots=True, kw_only=True)
class Forged:
    """The master ``peer`` was caught forging (``reason`` says how: an entry its author never signed,
    a reveal that breaks a commitment, a forked history): it is not followed any more.

    A resource core returns it as an effect; the node, once it distrusts ``peer``, as an event.
    """

    peer: PeerId
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AppRaised:
    """The app's ``where`` (``can_reveal``, a reducer revealing a private half, ``on_unrevealed``,
    ``on_deadline``) raised on ``rid``, or broke the reducer's contract.

    What it guarded did not happen: no reveal, that private half was dropped, or the state was
    left as it was (a deadline is marked fired all the same).
    """

    rid: Rid
    where: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateLost:
    """Own private halves ``seqs`` on ``rid`` were never revealed (this process lacks them, or they came
    too late): the master ``master`` ran the type's ``on_unrevealed`` for them instead."""

    rid: Rid
    seqs: tuple[int, ...]
    master: PeerId | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpeningForged:
    """``author`` opened its sealed private half ``seq`` on ``rid`` with something it had not committed to
    (its signature proves it sent that): the half counts as never revealed (``on_unrevealed`` ran)."""

    rid: Rid
    author: PeerId
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DrawShort:
    """A fair draw on ``rid`` (log index ``draw``) was fixed without the elements of ``missing``: players
    the master ``master`` asked that did not answer in time (or whose link dropped)."""

    rid: Rid
    draw: int
    missing: tuple[PeerId, ...]
    master: PeerId


@dataclass(frozen=True, slots=True, kw_only=True)
class Synced:
    """This peer holds every resource of the current master."""

    master: PeerId
    term: Term


Notice = (
    StateChanged
    | ActionSettled
    | RequestSettled
    | PresenceChanged
    | ResyncStarted
    | Rebased
    | Synced
    | ResourceRemoved
    | Stalled
    | Stuck
    | AppRaised
    | PrivateLost
    | OpeningForged
    | DrawShort
)
"""What the app hears of: the node passes these on unchanged."""

Effect = Send | Publish | TermObserved | Forged | Notice
"""Everything a resource core returns."""
