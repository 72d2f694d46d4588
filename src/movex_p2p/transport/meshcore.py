"""MeshCore: the LAN mesh's policy with no I/O, no clock and no global randomness.

Whom to dial and when (mDNS records, ``peers=`` addresses, peer exchange, backoff, giving up on
peers never proven), which incoming handshakes to admit (bounds per source address and in
total, strikes and refusals), which peers count as still joining, and when a silent link is
dead. :class:`~.lan.LanEndpoint` feeds it what happened, with ``now``, and performs the effects
it returns; its dial loops ask it what to do next. See docs/security.md for the bounds.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, assert_never

from ..election.detector import FailureDetector
from ..ids import PeerId
from .admission import Admission
from .contact import MAX_ADDRESSES, Contact
from .mesh import HINT_LIMIT, AddressState, Attempt, Attempts, Hints, PeerAddress, hint_addresses
from .twins import DropAll, ReportTwin, Twins

if TYPE_CHECKING:
    import random

    from .discovery import Announcement

__all__ = [
    "BACKOFF",
    "PENALTY",
    "AddressDials",
    "Beat",
    "DialDeclined",
    "DialNow",
    "DialOutcome",
    "DialState",
    "DropAll",
    "DropSilent",
    "Effect",
    "Failure",
    "FailureKind",
    "LinkClosed",
    "Log",
    "LogLevel",
    "MeshCore",
    "Pause",
    "PeerDials",
    "Probe",
    "PushOut",
    "Reannounce",
    "Refuse",
    "ReportSeen",
    "ReportTwin",
    "StartAddressDialer",
    "StartDialer",
    "Step",
    "Stop",
    "StopDialer",
    "WaitEnded",
    "WaitFor",
]

MAX_HANDSHAKES: Final = 64
"""Incoming handshakes not yet authenticated, at once; a further one pushes out the oldest."""
MAX_PER_ADDRESS: Final = 4
"""Incoming handshakes not yet authenticated from one source address, at once."""
STRIKES: Final = 4
"""Failed incoming handshakes from one address before it is refused for a while (doubling, up to a minute)."""
PENALTY: Final = (1.0, 60.0)
STRUCK: Final = "refused: too many failures from that address"
"""The reason counted (``LanStatus.refused``) when an address is refused after its strikes."""
REFUSAL_REASON: Final = "too many failed handshakes from this address (a wrong room secret?)"
"""What a refused dialer is told (then the seconds until the refusal ends)."""
BUSY: Final = "refused: too many strangers' handshakes in the room"
"""The reason counted when the room-wide budget of strangers' handshakes is spent (see admission.py)."""
BUSY_REASON: Final = "too many unauthenticated handshakes in this room lately (a wrong room secret?)"
"""What a dialer refused by the room-wide budget is told (then the seconds until it may retry)."""
REFUSING: Final = 16
"""Refused dialers told why at once; beyond that the connection is closed without a word."""
ADDRESSES_KEPT: Final = 1024
"""Source addresses whose failures are remembered (counts only; the oldest is forgotten first)."""
FAILURES_KEPT: Final = 16
DISCOVERY_GRACE: Final = 0.5
"""For this long after joining, a peer counts one more member it may not have heard of yet: the
peers of a room that is already there answer its first mDNS query in that time (even on a busy
machine), so it joins them rather than electing itself first."""
STALL: Final = 0.25
"""The heartbeat loop woke this much later than due: the process was stalled (a busy CPU, a
paused VM), and what peers sent meanwhile may still wait unread. Silence that long is ours."""
BACKOFF: Final = (0.05, 2.0)
"""First and longest pause between two dials of one peer or address."""
GROWTH: Final = 1.5
"""Each failed dial makes the next pause this much longer (up to the longest)."""
FALLBACK_DIAL: Final = 1.0
"""A peer seen over mDNS is dialed by the lower id at once; the higher id dials only if no link came after this long."""
BUSY_WINDOW: Final = 5.0
"""Seconds after this endpoint refused a stranger for the room's budget during which it dials a newly
announced peer at once, whatever the id order: that peer's own dial may be refused the same way."""
HINT_TRIES: Final = 4
"""Failed dials of a peer never proven (learnt by peer exchange or mDNS only) before its loop stops."""
RETRY_UNPROVEN: Final = (2.0, 60.0)
"""After its loop stopped, a never-proven peer is dialed again only after this pause (doubling): on news
of it, or at the pause's end if its last dial was refused for a while and it is still announced (a
flood of strangers that spent both sides' budgets may be all that kept it out, and an mDNS record
repeated unchanged is no news); a record nobody answers is not dialed again unasked."""
KNOWN_LIMIT: Final = 256
"""Most peers kept from mDNS at once (the oldest never-proven one makes room for a newcomer)."""
CANDIDATES: Final = 4
"""Distinct mDNS records (address, port, incarnation) kept per peer id: a copy cannot hide the real one."""
PROVEN_LIMIT: Final = 4096
"""Peers remembered as proven (a link with them was authenticated)."""
STABLE_LINK: Final = 5.0
"""A link that stayed open this long resets the dial backoff."""
JOINING_LIMIT: Final = 6
"""A found peer that answers our handshakes counts as joining for at most this many ``connect_timeout``
(its link may take long on a lossy Wi-Fi; one that answers yet never links must not block the room)."""
BAD_LIMIT: Final = 4 * KNOWN_LIMIT
"""mDNS records remembered as having failed to prove their peer (a random one is forgotten beyond)."""


# --- what the executor tells the core --------------------------------------------------------


class FailureKind(enum.Enum):
    """Why a dial failed."""

    UNREACHABLE = enum.auto()
    """No connection, or it timed out."""
    BAD_HANDSHAKE = enum.auto()
    """The other side sent something malformed or hung up mid-way."""
    WRONG_SECRET = enum.auto()
    """Authentication failed: the other side does not hold the room key or the identity expected."""
    REFUSED = enum.auto()
    """The other side refuses our address for ``retry_after`` seconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A dial that failed: the kind, the other side's ``retry_after`` (REFUSED) and a short text."""

    kind: FailureKind
    text: str
    retry_after: float = 0.0

    @property
    def auth(self) -> bool:
        """An authentication failure (a wrong secret, or a refusal)."""
        return self.kind in (FailureKind.WRONG_SECRET, FailureKind.REFUSED)


_REASON: Final = {
    FailureKind.UNREACHABLE: "unreachable or timed out",
    FailureKind.BAD_HANDSHAKE: "bad or cut-short handshake",
    FailureKind.WRONG_SECRET: "wrong secret",
    FailureKind.REFUSED: "wrong secret",
}


# --- effects ------------------------------------------------------------------------------------


class LogLevel(enum.Enum):
    """How loud a :class:`Log` effect is."""

    DEBUG = enum.auto()
    INFO = enum.auto()
    WARNING = enum.auto()


@dataclass(frozen=True, slots=True, kw_only=True)
class Log:
    """Log ``text`` (the core itself never logs)."""

    level: LogLevel
    text: str


@dataclass(eq=False, slots=True)
class DialState:
    """One dial loop's memory: its pause, its failures, whether it waited for the lower id."""

    peer: PeerId
    backoff: float = BACKOFF[0]
    failures: int = 0
    waited: bool = False
    started: float = 0.0
    record: Announcement | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartDialer:
    """Run a dial loop for ``dial.peer`` (cancelling one that runs for it already)."""

    dial: DialState


@dataclass(frozen=True, slots=True, kw_only=True)
class StopDialer:
    """Cancel the dial loop of ``peer`` (it reports its end as usual)."""

    peer: PeerId


@dataclass(frozen=True, slots=True, kw_only=True)
class StartAddressDialer:
    """Run a dial loop for a ``peers=`` address, for as long as the endpoint runs."""

    address: PeerAddress


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """Dial once where ``record`` says ``peer`` listens (a newer incarnation must prove itself)."""

    peer: PeerId
    record: Announcement


@dataclass(frozen=True, slots=True, kw_only=True)
class Reannounce:
    """Send our mDNS announcement again now (a newcomer with a higher id waits for us to dial)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PushOut:
    """Cancel the incoming handshake ``handle`` (the oldest unauthenticated one makes room)."""

    handle: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse:
    """Turn a connection away (``reason``: as counted); tell it ``told``, ``retry`` seconds, unless that is None."""

    reason: str
    retry: int | None
    told: str = REFUSAL_REASON


@dataclass(frozen=True, slots=True, kw_only=True)
class Beat:
    """Send a heartbeat on every link not dead."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DropSilent:
    """Nothing was heard from ``peer`` for ``after`` seconds (``dead_after``, or longer for a peer that
    kept long silences lately): drop its link if it is still open."""

    peer: PeerId
    after: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSeen:
    """Tell the node which peers were found and have no link yet (``PeersSeen``)."""

    peers: frozenset[str]


Effect = (
    (Log | StartDialer | StopDialer | StartAddressDialer | Probe | Reannounce | PushOut | Refuse | Beat | DropSilent)
    | ReportSeen
    | ReportTwin
    | DropAll
)


# --- what a dial loop does next --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """The loop ends."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitFor:
    """Wait until ``attempt`` (a handshake or link held with that peer) ends, then ask again."""

    attempt: Attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    """Sleep ``seconds`` (0: not at all), then ask again."""

    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DialNow:
    """Dial ``contact`` now and report the outcome (for a ``peers=`` address, ``contact.peer`` is "": unknown)."""

    contact: Contact


Step = Stop | WaitFor | Pause | DialNow


# --- how a dial loop's last step ended (what it reports to PeerDials.step) --------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitEnded:
    """What :class:`WaitFor` waited for, ``attempt``, has ended (it may have opened a link, or not)."""

    attempt: Attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class DialDeclined:
    """The dialed side holds a link of the pair already."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkClosed:
    """Our dial opened a link, and it has closed."""


DialOutcome = WaitEnded | DialDeclined | LinkClosed | Failure | None
"""How a dial loop's last step ended; None: the loop starts, or its :class:`Pause` is over."""


_Record = tuple[PeerId, int, tuple[str, ...], int]
"""An mDNS record as told apart: peer, port, addresses, incarnation."""


class _BadRecords:
    """Records that failed to prove their peer, at most ``BAD_LIMIT``: beyond, a random one is forgotten.

    Random (from the injected generator), so a flood of made-up records cannot choose which one goes.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._items: list[_Record] = []
        self._index: dict[_Record, int] = {}

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[_Record]:
        return iter(list(self._items))

    def add(self, item: _Record) -> None:
        if item in self._index:
            return
        self._index[item] = len(self._items)
        self._items.append(item)
        if len(self._items) > BAD_LIMIT:
            i = self._rng.randrange(len(self._items))
            victim, last = self._items[i], self._items.pop()
            del self._index[victim]
            if i < len(self._items):
                self._items[i], self._index[last] = last, i


@dataclass(slots=True)
class _AddressDial:
    backoff: float = BACKOFF[0]
    pause: float = BACKOFF[0]
    started: float = 0.0
    outage: bool = False


class AddressDials:
    """The dial loops of ``peers=`` addresses: what each does next, its backoff and its outage log."""

    def __init__(self, core: MeshCore) -> None:
        self._core = core
        self._dials: dict[PeerAddress, _AddressDial] = {}

    def next(self, address: PeerAddress, now: float) -> Step:
        """What the loop holding a link with whoever listens at ``address`` does next."""
        state = self._core.addresses.setdefault(address, AddressState())
        if address.port == self._core.port and address.host in self._core.interfaces:
            state.ours = True  # the same list on every player's machine: ours is in it
        if state.ours or state.twin or self._core.closing or self._core.twins.superseded:
            return Stop()
        held = None if state.peer is None else self._core.attempts.get(state.peer)
        if held is not None:
            return WaitFor(attempt=held)
        dial = self._dials.setdefault(address, _AddressDial())
        dial.started, dial.pause = now, dial.backoff
        return DialNow(contact=Contact(peer=PeerId(""), addresses=(address.host,), port=address.port))

    def answered(self, address: PeerAddress, peer: PeerId) -> None:
        """Who listens at ``address`` proved the room key."""
        state = self._core.addresses.setdefault(address, AddressState())
        state.peer, state.error = peer, None

    def is_ours(self, address: PeerAddress) -> list[Effect]:
        """We dialed ourselves there: its loop stops."""
        self._core.addresses.setdefault(address, AddressState()).ours = True
        return [Log(level=LogLevel.DEBUG, text=f"{address} is our own signaling address")]

    def twin(self, address: PeerAddress) -> list[Effect]:
        """A twin (another process of our identity) listens there: its loop stops."""
        state = self._core.addresses.setdefault(address, AddressState())
        state.twin, state.error = True, "another process of this peer's identity"
        return [Log(level=LogLevel.INFO, text=f"{address} is another process of this peer's identity")]

    def declined(self, address: PeerAddress, peer: PeerId) -> float:
        """``peer`` at ``address`` holds the pair already: seconds to pause (0: at once)."""
        self.answered(address, peer)
        return 0.0 if peer in self._core.attempts else self._pause(address)

    def failed(self, address: PeerAddress, failure: Failure) -> tuple[float, list[Effect]]:
        """A dial of ``address`` failed: seconds to pause; an outage is logged once (INFO), retries at DEBUG."""
        self._core._count(failure)
        dial = self._dials.setdefault(address, _AddressDial())
        if failure.kind is FailureKind.REFUSED:
            dial.pause = max(dial.pause, min(failure.retry_after, PENALTY[1]))
        state = self._core.addresses.setdefault(address, AddressState())
        state.error = f"{'refused' if failure.auth else 'unreachable'}: {failure.text}"
        cap = BACKOFF[1]
        if dial.outage:
            log = Log(level=LogLevel.DEBUG, text=f"{address}: {failure.text}")
        elif failure.auth:
            self._core.note_auth_failure(failure.text)
            log = Log(level=LogLevel.WARNING, text=f"{address}: {failure.text}; retrying every {cap:.0f} s at most")
        else:
            text = f"cannot reach {address} yet ({failure.text}); retrying every {cap:.0f} s at most"
            log = Log(level=LogLevel.INFO, text=text)
        dial.outage = True
        return self._pause(address), [log]

    def linked(self, address: PeerAddress, now: float) -> float:
        """The link our dial of ``address`` opened has closed: seconds to pause."""
        self._core.addresses.setdefault(address, AddressState()).error = None
        dial = self._dials.setdefault(address, _AddressDial())
        dial.outage = False
        if now - dial.started > STABLE_LINK:
            dial.backoff = dial.pause = BACKOFF[0]
        return self._pause(address)

    def _pause(self, address: PeerAddress) -> float:
        dial = self._dials.setdefault(address, _AddressDial())
        pause = dial.pause
        dial.backoff = min(dial.backoff * GROWTH, BACKOFF[1])
        return pause


class PeerDials:
    """The dial loops of peers known by id: what each does next, from how its last step ended.

    The one place these decisions are made: :meth:`.lan.LanEndpoint._dial_loop` and
    :class:`.meshworld.MeshNode` only perform the steps and report what came of them.
    """

    def __init__(self, core: MeshCore) -> None:
        self._core = core

    def step(self, dial: DialState, outcome: DialOutcome, now: float) -> tuple[Step, list[Effect]]:
        """``dial``'s loop reports how its last step ended, at ``now``: its next step, and effects to perform first.

        After a :class:`Pause` (0: none) it reports None; after :class:`WaitFor`, :class:`WaitEnded`;
        after :class:`DialNow`, the dial's failure, :class:`DialDeclined`, or :class:`LinkClosed`
        once the link it opened has closed.
        """
        pause: float | None
        effects: list[Effect] = []
        match outcome:
            case None:
                return self._next(dial, now), effects
            case WaitEnded(attempt=held) if not held.opened:
                return self._next(dial, now), effects  # a handshake that came to nothing: dial again
            case WaitEnded():
                pause = self._link_over(dial)  # a link with it was open and closed
            case DialDeclined():
                pause = 0.0 if dial.peer in self._core.attempts else self._grow(dial)  # else: it holds one we lost
            case LinkClosed():
                if now - dial.started > STABLE_LINK:
                    dial.backoff, dial.failures = BACKOFF[0], 0
                pause = self._link_over(dial)
            case Failure():
                pause, effects = self._failed(dial, outcome, now)
            case _:
                assert_never(outcome)
        return (Stop() if pause is None else Pause(seconds=pause)), effects

    def _next(self, dial: DialState, now: float) -> Step:
        """What the loop does next, asked afresh.

        Over mDNS the lower id dials at once and the higher id only after ``FALLBACK_DIAL``; a
        peer learnt by peer exchange is dialed at once (it may not know us), and so is every peer
        while strangers flood us (``BUSY_WINDOW``): the budget they spend may refuse its dial.
        """
        core, peer = self._core, dial.peer
        if core.closing or core.twins.superseded:
            return Stop()
        held = core.attempts.get(peer)
        if held is not None:
            return WaitFor(attempt=held)
        target = core._target(peer)
        if target is None:
            return Stop()
        contact, ann = target
        flooded = now < core._busy_until
        if core.me > peer and not dial.waited and ann is not None and peer not in core.hints and not flooded:
            dial.waited = True
            return Pause(seconds=FALLBACK_DIAL)
        dial.started, dial.record = now, ann
        return DialNow(contact=contact)

    def _grow(self, dial: DialState) -> float:
        pause = dial.backoff
        dial.backoff = min(dial.backoff * GROWTH, BACKOFF[1])
        return pause

    def _failed(self, dial: DialState, failure: Failure, now: float) -> tuple[float | None, list[Effect]]:
        """A dial failed: seconds to pause (0: at once) before asking again, or None (the loop gives up)."""
        core, peer, ann = self._core, dial.peer, dial.record
        core._count(failure)
        if core._answered_at.get(peer, -math.inf) < dial.started:
            dial.failures += 1  # it never answered: maybe gone (a link that was slow does not count)
        if dial.failures >= 2:  # not a peer that is about to link: stop waiting for it
            core._found_at.pop(peer, None)
        pause = dial.backoff
        effects: list[Effect] = []
        if failure.auth:
            effects.append(Log(level=LogLevel.WARNING, text=f"{peer}: {failure.text}"))
            core.note_auth_failure(failure.text)
        if failure.kind is FailureKind.REFUSED:  # our address, for a while: not this record
            pause = max(dial.backoff, min(failure.retry_after, PENALTY[1]))
        elif failure.kind is FailureKind.WRONG_SECRET:
            if ann is None:
                core.hints.forget(peer)  # the hint led to someone else
            else:  # that record: until the peer announces another incarnation
                core._mark_bad(peer, ann)
            return 0.0, effects
        if peer not in core._proven and dial.failures >= HINT_TRIES:
            effects.append(Log(level=LogLevel.DEBUG, text=f"giving up on {peer} (never proven): {failure.text}"))
            core._give_up(peer, now, refused=failure.kind is FailureKind.REFUSED)
            return None, effects
        effects.append(Log(level=LogLevel.DEBUG, text=f"dialing {peer} failed: {failure.text}; retry in {pause:.2f} s"))
        self._grow(dial)
        return pause, effects

    def _link_over(self, dial: DialState) -> float | None:
        """A link with ``dial.peer`` was open and closed: seconds to pause before dialing again, or None (stop)."""
        if dial.peer not in self._core._known:
            self._core.hints.forget(dial.peer)  # a hint is spent once its link closed
            return None
        dial.waited = False
        return self._grow(dial)


class MeshCore:
    """The mesh's policy for one endpoint: events in with ``now``, effects and dial steps out."""

    def __init__(
        self,
        me: PeerId,
        *,
        connect_timeout: float,
        dead_after: float,
        heartbeat_interval: float,
        rng: random.Random,
        incarnation: int = 0,
    ) -> None:
        self.me = me
        self.twins = Twins(me, incarnation)
        """Records of our own id, and other live processes of our identity (see :mod:`.twins`)."""
        self._connect_timeout = connect_timeout
        self._interval = heartbeat_interval
        self.refused: Counter[str] = Counter()
        """Handshakes that failed or were refused, by reason (a fixed set of words)."""
        self.auth_failures: deque[str] = deque(maxlen=FAILURES_KEPT)
        """The latest authentication failures (peers refused, or that refused us), as short texts."""
        self.attempts = Attempts(me)
        self.hints = Hints()
        self.addresses: dict[PeerAddress, AddressState] = {}
        self.interfaces: tuple[str, ...] = ()
        self.port = 0
        self.closing = False
        self._opened = False
        self._known: dict[PeerId, list[Announcement]] = {}  # newest first, at most CANDIDATES each
        self._proven: OrderedDict[PeerId, None] = OrderedDict()  # peers we held an authenticated link with
        self._gave_up: dict[PeerId, tuple[float, float]] = {}  # never-proven peer: (when its loop stopped, pause)
        self._retries: dict[PeerId, float] = {}  # given-up peers whose last dial was refused: when to dial again
        self._bad = _BadRecords(rng)  # mDNS records that failed auth
        self._left: dict[PeerId, int] = {}  # incarnations that said goodbye
        self._dials: dict[PeerId, DialState] = {}  # a dial loop runs for each
        self.dialing = PeerDials(self)
        """What the dial loops of peers known by id do next."""
        self.address = AddressDials(self)
        """The dial loops of ``peers=`` addresses."""
        self._probing: set[PeerId] = set()
        self._found_at: dict[str, float] = {}  # when each peer (or "@address") was first known
        self._answered_at: dict[str, float] = {}  # when each found peer last answered a handshake
        self._opened_at = math.inf
        self._seen: frozenset[str] = frozenset()  # last PeersSeen reported
        self._strikes: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address: (failures, refused until)
        self._incoming: OrderedDict[int, str] = OrderedDict()  # unauthenticated handshakes: handle -> source
        self._handles = 0
        self.admission = Admission()
        self._refusing = 0  # refusals being told now
        self._busy_until = -math.inf  # strangers refused for the room's budget lately: dial newcomers at once
        self._detector = FailureDetector(timeout=dead_after)
        self._next_beat = math.inf
        self._wake = math.inf

    # -- lifetime ------------------------------------------------------------------------------

    def open(
        self, now: float, *, interfaces: Sequence[str], port: int, addresses: Sequence[PeerAddress] = ()
    ) -> list[Effect]:
        """The endpoint listens on ``port`` of ``interfaces``: start dialing ``addresses`` and beating."""
        self.interfaces, self.port, self._opened = tuple(interfaces), port, True
        self._opened_at = self._next_beat = self._wake = now
        effects: list[Effect] = []
        for address in addresses:
            self.addresses[address] = AddressState()
            self._found_at[f"@{address}"] = now
            effects.append(StartAddressDialer(address=address))
        return effects

    def close(self) -> None:
        """The endpoint is closing: no new dial or handshake."""
        self.closing = True

    @property
    def contact(self) -> Contact:
        """Where we listen, as passed on in peer exchange."""
        return Contact(peer=self.me, addresses=self.interfaces[:MAX_ADDRESSES], port=self.port)

    # -- mDNS ------------------------------------------------------------------------------------

    @property
    def known(self) -> tuple[PeerId, ...]:
        """Peers seen over mDNS (kept)."""
        return tuple(self._known)

    def announced(self, ann: Announcement, now: float) -> list[Effect]:
        """An mDNS record: a hint to dial, kept beside (never instead of) other records of that id."""
        peer = ann.peer
        if peer == self.me or self.twins.superseded:
            return self._own_record(ann)
        effects: list[Effect] = []
        candidates = self._known.get(peer)
        if candidates is None:
            if len(self._known) >= KNOWN_LIMIT and not self._make_room(effects):
                text = f"ignoring {peer}: already {len(self._known)} peers known over mDNS"
                return [Log(level=LogLevel.DEBUG, text=text)]
            candidates = self._known[peer] = []
            effects.append(Log(level=LogLevel.DEBUG, text=f"discovered {peer}"))
            self._found_at.setdefault(peer, now)
        where = (ann.port, ann.addresses, ann.incarnation)
        news = all((c.port, c.addresses, c.incarnation) != where for c in candidates)
        candidates[:] = [ann, *(c for c in candidates if (c.port, c.addresses, c.incarnation) != where)]
        del candidates[CANDIDATES:]
        held = self.attempts.get(peer)
        if held is not None and held.opened and ann.incarnation > held.incarnation:
            # Maybe it restarted, maybe someone copies its id: only a handshake in which the new
            # incarnation proves the peer's key replaces the link (mesh.admit), never the record.
            text = f"{peer} announces incarnation {ann.incarnation}: checking it with a handshake"
            effects.append(Log(level=LogLevel.INFO, text=text))
            if self._opened and not self.closing and peer not in self._probing:
                self._probing.add(peer)
                effects.append(Probe(peer=peer, record=ann))
        if not self.me < peer and news and held is None and len(candidates) == 1:
            effects.append(Reannounce())  # the lower id dials: tell it at once that we are here
        if news and held is None:
            effects += self._ensure_dialer(peer, now, restart=True)  # a new dial loop reads the news at once
        return effects

    def _own_record(self, ann: Announcement) -> list[Effect]:
        """A record of our own id: another process of our identity, or a copy (probed once, proves nothing)."""
        if ann.peer != self.me or not self._opened or self.closing:
            return []
        record = self.twins.announced(ann)
        if record is None:
            return []
        text = f"a record of our own id announces incarnation {ann.incarnation}: checking it with a handshake"
        return [Log(level=LogLevel.INFO, text=text), Probe(peer=self.me, record=record)]

    def twin(self, incarnation: int) -> list[Effect]:
        """A handshake proved another live process of our identity, of ``incarnation``: report it (once).

        A later one keeps the links: from then on we hold nothing and dial nobody.
        """
        effects: list[Effect] = []
        for effect in self.twins.proven(incarnation):
            if isinstance(effect, ReportTwin):
                effects += [Log(level=LogLevel.WARNING, text=effect.detail), effect]
            else:  # DropAll
                effects += [effect, *(StopDialer(peer=peer) for peer in self._dials)]
        return effects

    def withdrawn(self, peer: PeerId) -> list[Effect]:
        """An mDNS goodbye: a hint too; it never touches a live link, and stops only a never-proven peer's dial loop."""
        effects: list[Effect] = [Log(level=LogLevel.DEBUG, text=f"{peer} withdrew its mDNS record")]
        if peer not in self._proven:
            self._known.pop(peer, None)
            if peer in self._dials and peer not in self.attempts and peer not in self.hints:
                effects.append(StopDialer(peer=peer))
        return effects

    def _make_room(self, effects: list[Effect]) -> bool:
        """Forget the oldest mDNS peer never proven and not being dialed with success; False if none."""
        for peer in self._known:
            if peer not in self._proven and peer not in self.attempts:
                del self._known[peer]
                if peer in self._dials and peer not in self.hints:
                    effects.append(StopDialer(peer=peer))
                return True
        return False

    def probe_failed(self, peer: PeerId, record: Announcement, failure: Failure) -> None:
        """A probe of ``record`` failed: unless it was our address that was refused, that record is bad."""
        self._count(failure)
        if peer == self.me:
            return  # a record of our own id that proved nothing: probed once (see Twins)
        if failure.kind is FailureKind.REFUSED:
            self.note_auth_failure(failure.text)  # our address is refused for a while: says nothing of the record
        else:
            self._mark_bad(peer, record)

    def probe_ended(self, peer: PeerId) -> list[Effect]:
        """The probe of ``peer`` is over (at most one a second): the next record of our own id to probe, if any."""
        if peer != self.me:
            self._probing.discard(peer)
            return []
        record = self.twins.probe_ended()
        return [] if record is None or self.closing else [Probe(peer=self.me, record=record)]

    # -- peer exchange -----------------------------------------------------------------------------

    def learnt(self, members: Sequence[Contact], *, source: PeerId, now: float) -> list[Effect]:
        """Peer exchange: dial the members ``source`` passed on that we hold nothing with (hints only)."""
        allow_loopback = any(ipaddress.IPv4Address(a).is_loopback for a in self.interfaces)
        effects: list[Effect] = []
        for member in members:
            peer = member.peer
            if peer == self.me or peer in self.attempts:
                continue
            addresses = hint_addresses(member.addresses, allow_loopback=allow_loopback)
            if not addresses:
                continue
            if not self.hints.learn(Contact(peer=peer, addresses=addresses, port=member.port)):
                text = f"peer exchange from {source}: {len(self.hints)} hints held, {peer} ignored"
                effects.append(Log(level=LogLevel.DEBUG, text=text))
                continue
            effects += self._ensure_dialer(peer, now)
        return effects

    # -- dial loops of peers known by id ----------------------------------------------------------

    def _ensure_dialer(self, peer: PeerId, now: float, *, restart: bool = False) -> list[Effect]:
        """Run a dial loop for ``peer`` unless one runs already (``restart``: replace it).

        A never-proven peer whose loop gave up is dialed again only after a pause that doubles
        each time (news or not), so fake records cannot keep us dialing.
        """
        running = peer in self._dials
        if not running and peer not in self._proven:
            gave_up = self._gave_up.get(peer)
            if gave_up is not None and now < gave_up[0] + gave_up[1]:
                return []
        if (running and not restart) or not self._opened or self.closing or self.twins.superseded:
            return []
        dial = self._dials[peer] = DialState(peer)
        return [StartDialer(dial=dial)]

    def dialer_ended(self, dial: DialState) -> None:
        """The loop of ``dial`` ended (returned or cancelled)."""
        if self._dials.get(dial.peer) is dial:
            del self._dials[dial.peer]

    def _target(self, peer: PeerId) -> tuple[Contact, Announcement | None] | None:
        """Where to dial ``peer`` next, and the mDNS record that said so; None: do not dial it."""
        hint = self.hints.get(peer)
        for ann in self._known.get(peer, ()):
            if ann.incarnation == self._left.get(peer) or (peer, ann.port, ann.addresses, ann.incarnation) in self._bad:
                continue  # it said goodbye, or that record failed to prove the peer (or our secret)
            extra = () if hint is None or hint.port != ann.port else hint.addresses
            addresses = tuple(dict.fromkeys((*ann.addresses, *extra)))
            return Contact(peer=peer, addresses=addresses, port=ann.port), ann
        return None if hint is None else (hint, None)

    def _mark_bad(self, peer: PeerId, ann: Announcement) -> None:
        self._bad.add((peer, ann.port, ann.addresses, ann.incarnation))

    def _give_up(self, peer: PeerId, now: float, *, refused: bool) -> None:
        """A never-proven peer's dial loop stops: its next one waits (see :meth:`_ensure_dialer`)."""
        last = self._gave_up.get(peer)
        pause = RETRY_UNPROVEN[0] if last is None else min(last[1] * 2, RETRY_UNPROVEN[1])
        self._gave_up[peer] = (now, pause)
        if refused:
            self._retries[peer] = now + pause
        if len(self._gave_up) > KNOWN_LIMIT + HINT_LIMIT:  # forget the oldest first
            self._retries.pop(oldest := next(iter(self._gave_up)), None)
            del self._gave_up[oldest]
        self.hints.forget(peer)

    def _retry_given_up(self, now: float, linked: frozenset[PeerId]) -> list[Effect]:
        """Dial again each given-up peer that refused us, still announced, whose pause ended (``RETRY_UNPROVEN``)."""
        effects: list[Effect] = []
        for peer in [p for p, at in self._retries.items() if at <= now]:
            del self._retries[peer]
            if peer not in self._dials and peer not in linked and peer in self._known and self._target(peer):
                effects += self._ensure_dialer(peer, now)  # else: dialing it, linked, or no record to dial
        return effects

    # -- handshakes --------------------------------------------------------------------------------

    def answered(self, peer: PeerId, now: float) -> None:
        """A handshake with ``peer`` got far enough that it is alive: a found peer keeps counting as joining."""
        if peer in self._found_at:
            self._answered_at[peer] = now

    def claim(self, peer: PeerId, *, dialer: PeerId, incarnation: int) -> tuple[Attempt, Attempt | None] | None:
        """Hold ``peer`` for a newly authenticated handshake (see :meth:`.mesh.Attempts.claim`); never if superseded."""
        if self.twins.superseded:
            return None
        return self.attempts.claim(peer, dialer=dialer, incarnation=incarnation)

    def incoming(self, source: str, now: float) -> tuple[int | None, list[Effect]]:
        """A connection from ``source``: a handle for its handshake, or None and a :class:`Refuse`."""
        refusal: str | None = None
        effects: list[Effect] = []
        strikes = self._strikes.get(source)
        if self.closing:
            return None, [Refuse(reason="closing", retry=None)]
        if strikes is not None and now < strikes[1]:
            refusal = STRUCK
        elif sum(1 for where in self._incoming.values() if where == source) >= MAX_PER_ADDRESS:
            refusal = "refused: too many handshakes from that address"
        wait: float | None = None
        if refusal is None and (wait := self._admit(source, now)) is not None:
            refusal = BUSY  # the room-wide budget: before any crypto
            self._busy_until = now + BUSY_WINDOW
        if refusal is not None:
            self.refused[refusal] += 1
            retry = None
            seconds = {STRUCK: None if strikes is None else strikes[1] - now, BUSY: wait}.get(refusal)
            if seconds is not None and self._refusing < REFUSING:  # too many at once from one address: no word
                self._refusing += 1
                retry = max(1, math.ceil(seconds))
            told = BUSY_REASON if refusal == BUSY else REFUSAL_REASON
            return None, [Refuse(reason=refusal, retry=retry, told=told)]
        if len(self._incoming) >= MAX_HANDSHAKES:  # the oldest unauthenticated one makes room
            oldest, _ = self._incoming.popitem(last=False)
            effects.append(PushOut(handle=oldest))
            self.refused["pushed out by newer handshakes"] += 1
        self._handles += 1
        self._incoming[self._handles] = source
        return self._handles, effects

    def _admit(self, source: str, now: float) -> float | None:
        room = 1 + sum(1 for attempt in self.attempts if attempt.opened)  # every member listens: share the budget
        return self.admission.admit(self._handles + 1, source, now, room=room)

    def refusal_told(self) -> None:
        """A refusal was told (or could not be): one fewer being told."""
        self._refusing -= 1

    def authenticated(self, handle: int, source: str) -> None:
        """The dialer of ``handle`` proved the room key and its identity: no longer a stranger."""
        self._incoming.pop(handle, None)
        self._strikes.pop(source, None)
        self.admission.authenticated(handle, source)

    def handshake_over(self, handle: int) -> None:
        """The handshake of ``handle`` ended (either way)."""
        self._incoming.pop(handle, None)
        self.admission.over(handle)

    def handshake_failed(self, source: str, reason: str, now: float) -> None:
        """A handshake from ``source`` failed: after a few, refuse that address for a while (doubling)."""
        self.refused[reason] += 1
        if not self.admission.failed(source, wrong_secret=reason == "wrong secret"):
            return  # a member's handshake cut short (see Admission.failed)
        count, _ = self._strikes.pop(source, (0, 0.0))
        count += 1
        until = 0.0
        if count >= STRIKES:
            until = now + min(PENALTY[0] * 2 ** (count - STRIKES), PENALTY[1])
        self._strikes[source] = (count, until)
        while len(self._strikes) > ADDRESSES_KEPT:
            self._strikes.popitem(last=False)

    def note_auth_failure(self, text: str) -> None:
        """Keep a short text of an authentication failure."""
        self.auth_failures.append(text[:200])

    def _count(self, failure: Failure) -> None:
        self.refused[_REASON[failure.kind]] += 1

    # -- links and liveness ----------------------------------------------------------------------

    def link_opened(self, peer: PeerId) -> None:
        """An authenticated link with ``peer`` opened: from now on it is dialed for as long as it is known."""
        self._proven[peer] = None
        self._proven.move_to_end(peer)
        while len(self._proven) > PROVEN_LIMIT:
            self._proven.popitem(last=False)
        self._gave_up.pop(peer, None)

    def heard(self, peer: PeerId, now: float) -> None:
        """Something arrived from ``peer`` on its link."""
        self._detector.heard(peer, now)

    def link_closed(self, peer: PeerId, *, incarnation: int, graceful: bool, current: bool) -> None:
        """A link with ``peer`` closed (``current``: the one we held, not one replaced)."""
        if graceful:
            self._left[peer] = incarnation
            self.hints.forget(peer)  # what others told of it predates its goodbye: no dial may revive it
            while len(self._left) > KNOWN_LIMIT:  # the oldest goodbyes are forgotten first
                del self._left[next(iter(self._left))]
        if current:
            self._detector.forget(peer)

    def tick(self, now: float, *, linked: frozenset[PeerId]) -> list[Effect]:
        """Heartbeats, silent links, peers still joining; then :meth:`next_deadline` says when to call again."""
        effects: list[Effect] = []
        if now - self._wake > STALL:  # our own loop stalled: don't blame the peers for it
            self._detector.stalled(now - self._wake)
        if now >= self._next_beat:
            effects.append(Beat())
            self._next_beat = now + self._interval
        effects += [DropSilent(peer=peer, after=after) for peer, after in self._detector.expired(now)]
        if self._retries and now >= min(self._retries.values()):
            effects += self._retry_given_up(now, linked)
        seen = self.still_joining(now, linked=linked)
        if seen != self._seen:
            self._seen = seen
            effects.append(ReportSeen(peers=seen))
        deadline = self._detector.deadline
        self._wake = max(now, self._next_beat if deadline is None else min(self._next_beat, deadline + 0.001))
        return effects

    def next_deadline(self) -> float:
        """When :meth:`tick` is due next (infinity before :meth:`open`)."""
        return self._wake

    def still_joining(self, now: float, *, linked: frozenset[PeerId]) -> frozenset[str]:
        """Peers found (or ``peers=`` addresses) with no link yet, found less than two ``connect_timeout`` ago.

        A peer stops counting sooner once two dials to it failed (a stale mDNS record of a
        peer that is gone); on a lossy Wi-Fi a live peer's link can take several seconds.
        Once this endpoint is open that long, only peers whose handshake proved the room key
        lately count: mDNS records are hints anyone can send, and a stream of made-up members
        must not keep a new room from electing.
        """
        window = 2 * self._connect_timeout
        young = now - self._opened_at < window  # past the first window, only peers that proved the room key
        for key, at in list(self._found_at.items()):
            answered = now - self._answered_at.get(key, -math.inf) < window  # its handshake got that far lately
            in_time = now - at < window or (answered and now - at < JOINING_LIMIT * self._connect_timeout)
            if not in_time or not (answered or young):
                del self._found_at[key]  # a link had its chance: found long ago, it no longer counts
                self._answered_at.pop(key, None)
        seen: set[str] = {
            peer
            for peer, records in self._known.items()
            if peer in self._found_at
            and peer not in linked
            and peer not in self._left
            and any(  # a record that refused our secret, or a spectator's (it never votes), counts for nothing
                (peer, r.port, r.addresses, r.incarnation) not in self._bad and r.role != "spectator" for r in records
            )
        }
        seen.update(
            key
            for address, state in self.addresses.items()
            if state.peer is None and not state.ours and (key := f"@{address}") in self._found_at
        )
        if now - self._opened_at < DISCOVERY_GRACE:
            seen.add("?")  # peers already here answer our first mDNS query within this long
        return frozenset(seen)
