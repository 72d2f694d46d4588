"""Resource wire messages (tags 30-59, append only), their routes and their lane (pure).

Every message carries the sender's ``term``; log entries carry a global ``index`` that grows
by one per entry across every resource (the election compares (term, index)) and a
per-resource ``version`` that grows by one per state change. Which core handles each message
is declared once, by the two unions :data:`ToMaster` and :data:`ToClients` at the end of this
module (:data:`ROUTES`); every resource message travels on the reliable lane (:data:`LANES`).

The signed history (docs/security.md): an author's actions reach the master with its
:class:`Endorse` (one signature per frame over a digest of each action), which the master
republishes to everyone as :class:`Endorsed` before the entries; each ``Applied`` carries what a
peer needs to recompute its digest (the action as dispatched, and a commitment to its private
half). The master seals the heads of the resources each step changed (:class:`Sealed`), a
snapshot carries the seal of its head, and peers compare seals (:class:`Witness`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from ..ids import PeerId, Rid, Term
from ..routes import Lane, Route
from .types import Action

__all__ = [
    "LANES",
    "MESSAGES",
    "ROUTES",
    "Ack",
    "Anchor",
    "Anchored",
    "Applied",
    "Began",
    "Bind",
    "Committed",
    "Contribute",
    "Contribution",
    "Create",
    "Created",
    "Drawing",
    "Drawn",
    "Elapsed",
    "Endorse",
    "Endorsed",
    "Era",
    "Head",
    "Held",
    "Open",
    "Position",
    "Presence",
    "Propose",
    "Pull",
    "Pulled",
    "Refusal",
    "Rejected",
    "Remove",
    "Removed",
    "Replied",
    "Report",
    "Resend",
    "ResourceMessage",
    "Restore",
    "Revealed",
    "Sealed",
    "Secret",
    "Snapshot",
    "SyncRequest",
    "ToClients",
    "ToMaster",
    "ToPeers",
    "Unbind",
    "Witness",
]


# -- client -> master ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Create:
    """Ask the master to create ``rid`` with ``state`` (kept as is when it exists and exist_ok)."""

    term: Term
    req: int
    rid: Rid
    state: Any
    exist_ok: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Bind:
    """Subscribe to ``rid`` with presence ``info``."""

    term: Term
    req: int
    rid: Rid
    info: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind:
    """Stop being a subscriber of ``rid``."""

    term: Term
    rid: Rid


@dataclass(frozen=True, slots=True, kw_only=True)
class Remove:
    """Ask the master to delete ``rid`` everywhere."""

    term: Term
    req: int
    rid: Rid


@dataclass(frozen=True, slots=True, kw_only=True)
class Propose:
    """Apply ``action`` (and hold ``private`` for the author) to ``rid``.

    ``seq`` counts the author's actions on ``rid`` from 1 and is the idempotency key; every seq
    up to ``base`` is already settled (confirmed or rejected), so the master may skip to
    ``base + 1``; any other gap means earlier actions are still on their way.
    """

    term: Term
    rid: Rid
    seq: int
    base: int
    action: Action
    private: Action | None = None
    nonce: bytes = b""
    """With ``private``: the author's random nonce of its commitment (see ``history.commitment``)."""
    sealed: bytes = b""
    """A sealed type's pair: the author's commitment to the private half it keeps (see ``sealed``)."""
    incarnation: bytes = b""
    """The incarnation of ``rid`` the author signed this action for (its ``Created`` entry's)."""
    draw: bool = False
    """A sealed pair whose private half holds ``mx.fair`` values: the master draws a beacon for it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Restore:
    """After a master change: the author re-delivers the private half of confirmed pair ``seq``."""

    term: Term
    rid: Rid
    seq: int
    private: Action
    nonce: bytes = b""
    origin: Action | None = None
    """The private half as dispatched, when the master that confirmed it resolved master values in it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endorse:
    """The author's signature over the digests of the actions it proposes in this frame (sent before them)."""

    term: Term
    digests: tuple[bytes, ...]
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """A replica's position for one resource: last entry term, version and checksum."""

    term: Term
    version: int
    checksum: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """To a new master (or one whose link came back): what this replica holds, so it can send or pull the difference."""

    term: Term
    req: int
    have: dict[str, Position]


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncRequest:
    """Ask the master for a snapshot of ``rid`` (checksum mismatch or version gap)."""

    term: Term
    rid: Rid


# -- master -> clients -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Created:
    """Log entry: ``rid`` now exists with ``state`` at version 0."""

    term: Term
    index: int
    rid: Rid
    state: Any
    checksum: bytes
    incarnation: bytes = b""
    """Unique to this creation of ``rid`` (the master's choice): actions are signed for one incarnation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """Log entry: ``action`` by ``author`` (its ``seq``) applied, giving ``version`` and ``checksum``.

    ``private`` marks the public half of a private pair; the author holds the private half.
    """

    term: Term
    index: int
    rid: Rid
    version: int
    author: PeerId
    seq: int
    action: Action
    private: bool
    checksum: bytes
    now: float
    origin: Action | None = None
    """The action as its author dispatched it, when the master resolved master values in it."""
    commitment: bytes = b""
    """With ``private``: the author's commitment to its private half (checked when it is revealed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """A private action in a reveal, or (without ``action``) a reference to one still held."""

    author: PeerId
    seq: int
    action: Action | None = None
    commitment: bytes = b""
    """The author's commitment to the private half (the revealed action must match it)."""
    nonce: bytes = b""
    origin: Action | None = None
    """In a reveal: the private half as dispatched, when the master resolved master values in it."""
    public: Action | None = None
    """The pair's public half (what ``on_unrevealed`` is told if the private half is never revealed)."""
    proof: bytes = b""
    """A sealed half's opening: its author's signature over the batch of openings it came in."""
    batch: bytes = b""
    """With ``proof``: the digests of that batch's openings (``sealed.half_digest``), this one's among them."""
    beacon: bytes = b""
    """A sealed pair drawn for (``Propose.draw``): the seed of its draw, which its private draws read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Revealed:
    """Log entry: held private actions replayed onto the public state in master order.

    A held reference without ``action`` is a private half that could not be revealed (its author
    gone, or back without it, or silent for the type's ``reveal_timeout``): the type's
    ``on_unrevealed`` runs for it at its place in the order.
    """

    term: Term
    index: int
    rid: Rid
    version: int
    actions: tuple[Held, ...]
    checksum: bytes
    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence:
    """Log entry: the subscribers of ``rid`` (peer id -> info)."""

    term: Term
    index: int
    rid: Rid
    subscribers: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Removed:
    """Log entry: ``rid`` no longer exists (its state, subscribers and held private actions are gone).

    A replica is dropped only once a seal records the removal (the ``Sealed`` after it, or ``seal``
    when the master tells a peer that missed it again), so a removal is part of the witnessed history.
    """

    term: Term
    index: int
    rid: Rid
    seal: Sealed | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Secret:
    """To the author only: the private half of pair ``seq`` as the master resolved it."""

    term: Term
    rid: Rid
    seq: int
    private: Action
    nonce: bytes = b""
    """Sent back to an author that restarted: the nonce of the private half's commitment."""
    origin: Action | None = None
    """Sent back to an author that restarted: the private half as dispatched, if the master resolved it."""


Refusal = Literal["rejected", "not_found", "too_large", "incompatible"]
"""Why the master refused a request or an action: the reducer (or a rule) refused it, the
resource or its type is unknown, the state would grow over the type's ``max_bytes``, or the
sender's version of the type differs from the master's."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    """To the author only: action ``seq`` on ``rid`` was refused for ``reason``."""

    term: Term
    rid: Rid
    seq: int
    reason: str
    refusal: Refusal = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Replied:
    """The answer to request ``req`` (create, bind, remove or report): ``error`` is None on success."""

    term: Term
    req: int
    rid: Rid
    error: str | None = None
    refusal: Refusal = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Era:
    """From ``since`` on, a resource's versions were written by the master of ``term``."""

    term: Term
    since: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Head:
    """What a resource is after a log entry: its version, checksum and the digest of its applied seqs and held refs."""

    rid: Rid
    version: int
    checksum: bytes
    meta: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Sealed:
    """The master of ``term`` signs, at log ``index``, the heads of the resources that changed since its last seal.

    The seals of a term are a chain (see ``history``): this one covers the log indices
    ``(prev, index]`` of the term begun at ``began``, and ``chain`` is the digest of the seal at ``prev``
    (empty for the first, whose ``prev`` is ``began``).
    """

    term: Term
    index: int
    heads: tuple[Head, ...]
    proof: bytes
    began: int = 0
    prev: int = 0
    chain: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endorsed:
    """An author's :class:`Endorse`, republished by the master to every peer before the entries it covers."""

    term: Term
    author: PeerId
    digests: tuple[bytes, ...]
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """From the master: a whole replica of ``rid`` (state, subscribers, held private references, applied seqs)."""

    term: Term
    index: int
    rid: Rid
    entry_term: Term
    version: int
    state: Any
    checksum: bytes
    subscribers: dict[str, dict[str, Any]]
    held: tuple[Held, ...]
    applied: dict[str, int]
    eras: tuple[Era, ...] = ()
    seal: Sealed | None = None
    """The seal of the master of ``entry_term`` over this head (a new master adopts only sealed replicas)."""
    recent: dict[str, bytes] = field(default_factory=dict)
    """Per author, which of its last seqs up to ``applied`` this replica holds (see ``Replica.holds``)."""
    incarnation: bytes = b""
    """The incarnation of ``rid`` (its ``Created`` entry's; part of each head's ``meta``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pull:
    """From a new master: send me your snapshot of ``rid`` (you are ahead of me)."""

    term: Term
    rid: Rid


@dataclass(frozen=True, slots=True, kw_only=True)
class Resend:
    """From the master: your actions on ``rid`` after ``after`` did not all arrive; send them again."""

    term: Term
    rid: Rid
    after: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Committed:
    """From the master (``majority`` policy): a quorum holds the log up to ``index``."""

    term: Term
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Began:
    """Log entry: the master of ``term`` starts serving (entries before it are now its own)."""

    term: Term
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Elapsed:
    """Log entry: the earliest deadline in ``rid``'s state (at ``deadline``) passed: it is marked fired
    and the type's ``on_deadline`` ran with the master's clock ``now``, giving ``version`` and ``checksum``."""

    term: Term
    index: int
    rid: Rid
    version: int
    deadline: float
    checksum: bytes
    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Open:
    """The author opens sealed private halves of ``rid`` (the type's ``can_reveal`` holds): each one's
    seq, commitment, half and nonce, and one signature over them all (``sealed.batch_statement``)."""

    term: Term
    rid: Rid
    halves: tuple[Held, ...]
    proof: bytes


# -- client -> master, answering the master (after the types they carry) -------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Pulled:
    """To the master, answering its Pull: this peer's replica of ``snapshot.rid``."""

    term: Term
    snapshot: Snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """To the master (``majority`` policy): this replica holds the log up to ``index``."""

    term: Term
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Witness:
    """Peer to peer: the latest seal this peer got from its master (peers compare what their master told them)."""

    term: Term
    sealed: Sealed


# -- fair draws (resource/draws.py, docs/security.md "Fair randomness"; tags 80-89) ---------


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """To the master: this player's hash chain, ``root`` = H^length(seed), signed (``fair.anchor_statement``)."""

    term: Term
    root: bytes
    length: int
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchored:
    """A player's :class:`Anchor`, relayed by the master to every peer (any master may relay it).

    ``at``/``element``/``next``: the last element of the chain a draw used (0 and the root if
    none) and the index its next contribution must have, so a peer that joined late can check it.
    """

    term: Term
    peer: PeerId
    root: bytes
    length: int
    proof: bytes
    at: int = 0
    element: bytes = b""
    next: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Drawing:
    """Log entry: the master asks ``players`` (sorted) for their next chain elements for the draw of
    action ``seq`` of ``author`` on ``rid`` (``digest``: that action's digest, ``history.action_digest``).

    The players asked are fixed here, before any element is known: the ``Drawn`` must account for
    each of them (an element or named missing) and for no one else."""

    term: Term
    index: int
    rid: Rid
    author: PeerId
    seq: int
    digest: bytes
    players: tuple[PeerId, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Contribute:
    """To the master, answering the :class:`Drawing` at log index ``draw``: chain element ``at``, signed
    over the draw's binding (``fair.contribution_statement``)."""

    term: Term
    draw: int
    rid: Rid
    author: PeerId
    seq: int
    digest: bytes
    at: int
    element: bytes
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Contribution:
    """One player's element in a :class:`Drawn` (its ``proof`` as in its :class:`Contribute`)."""

    peer: PeerId
    at: int
    element: bytes
    proof: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Drawn:
    """Log entry: the draw at log index ``draw`` is fixed by ``contributions``; ``missing`` names the
    players asked whose element the master did not get in time (each one's index is used up all the
    same). The seed is ``fair.draw_seed`` of them; the action's ``Applied`` follows at once."""

    term: Term
    index: int
    draw: int
    rid: Rid
    author: PeerId
    seq: int
    digest: bytes
    contributions: tuple[Contribution, ...]
    missing: tuple[PeerId, ...] = ()


ToMaster = (
    Create
    | Bind
    | Unbind
    | Propose
    | Restore
    | Report
    | SyncRequest
    | Pulled
    | Ack
    | Remove
    | Endorse
    | Anchor
    | Contribute
    | Open
)
"""Client -> master (:attr:`Route.TO_MASTER`): the MasterCore serves them."""

ToClients = (
    Created
    | Applied
    | Revealed
    | Presence
    | Secret
    | Rejected
    | Replied
    | Snapshot
    | Pull
    | Resend
    | Committed
    | Began
    | Removed
    | Sealed
    | Endorsed
    | Elapsed
    | Anchored
    | Drawing
    | Drawn
)
"""Master -> clients (:attr:`Route.TO_CLIENTS`): every peer's ClientCore applies them."""

ToPeers = Witness
"""Peer -> peer (:attr:`Route.NODE`): the NodeCore itself compares what the master told each."""

ResourceMessage = ToMaster | ToClients | ToPeers

ROUTES: Final[dict[type[ResourceMessage], Route]] = {
    **dict.fromkeys(get_args(ToMaster), Route.TO_MASTER),
    **dict.fromkeys(get_args(ToClients), Route.TO_CLIENTS),
    Witness: Route.NODE,
}
"""The route of every resource message, derived from the two unions above."""

LANES: Final[dict[type[ResourceMessage], Lane]] = dict.fromkeys(get_args(ResourceMessage), Lane.RELIABLE)
"""Every resource message is ordered and must not be lost: the reliable lane."""

MESSAGES: Final[dict[int, type[ResourceMessage]]] = {
    30: Create,
    31: Bind,
    32: Unbind,
    33: Propose,
    34: Restore,
    35: Report,
    36: SyncRequest,
    37: Created,
    38: Applied,
    39: Revealed,
    40: Presence,
    41: Secret,
    42: Rejected,
    43: Replied,
    44: Snapshot,
    45: Pull,
    46: Resend,
    47: Ack,
    48: Committed,
    49: Began,
    50: Pulled,
    51: Remove,
    52: Removed,
    53: Endorse,
    54: Endorsed,
    55: Sealed,
    56: Witness,
    57: Elapsed,
    59: Open,
    80: Anchor,
    81: Anchored,
    82: Drawing,
    83: Contribute,
    84: Drawn,
}
"""Wire tags: append, never renumber (80-89: fair draws)."""
