"""Fair draws: the book of players' chains, the player's side and the master's state machine (pure).

An action whose public payload holds ``mx.fair`` placeholders is not applied when it arrives.
The master (:class:`Draws`) publishes a :class:`~.messages.Drawing` log entry binding the draw
to that action (rid, author, seq, digest); every player (:class:`Player`, in each ClientCore)
answers with its next chain element, signed over that binding (:class:`~.messages.Contribute`);
once all answered, or ``timeout`` passed, the master publishes :class:`~.messages.Drawn` (the
elements, and ``missing``: the players the ``Drawing`` named whose element it lacks) and, at once,
the action's ``Applied`` with the values read from the draw's seed. One draw runs at a time; other fair
actions wait in arrival order.

Every peer keeps a :class:`Ledger` of the players' chains (anchor, last element used, next index)
and checks each ``Drawn``: every element is the next one of its player's chain (a missing
player's index is used up too), then the ``Applied`` that follows carries exactly the values of
the seed. Anything else is a forgery by the master (a :class:`~.effects.Forged` effect). The
signatures (anchors, contributions) are checked by the node's verify stage (``verify.py``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from ..errors import RemoteProtocolError
from ..ids import PeerId, Rid, Term
from ..proofs import prove
from .effects import DrawShort, Effect, Forged, Publish, Send
from .fair import (
    CHAIN_LENGTH,
    HashChain,
    anchor_statement,
    contribution_statement,
    draw_seed,
    resolve_fair,
    verify_element,
)
from .history import action_digest, proposal_commitment, resolves
from .messages import Anchor, Anchored, Applied, Contribute, Contribution, Drawing, Drawn, Propose
from .types import Action
from .values import has_fair_values, has_master_values

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..signing import Signer
    from .types import ResourceType

__all__ = [
    "DRAW_TIMEOUT",
    "MAX_DRAWS_WAITING",
    "MAX_PLAYERS",
    "Draws",
    "Ledger",
    "Player",
    "fair_in_master_half",
    "proposal_digest",
    "waits_for_values",
]

DRAW_TIMEOUT: Final = 2.0
"""Seconds the master waits for the elements of players still linked to it before it draws with those
it has (a player whose link drops is not waited for). Longer than a live link takes to deliver
(a link silent for 0.9 s is dead), so a player that answered over a link that stayed up and is
named missing knows the master chose to leave it out."""

MAX_PLAYERS: Final = 1024
"""Chains a ledger keeps (one per player)."""

MAX_DRAWS_WAITING: Final = 4096
"""Fair actions the master keeps waiting behind the running draw; beyond that they are dropped and
reported (their authors send them again)."""


def proposal_digest(author: str, msg: Propose) -> bytes:
    """The digest of a proposal as its author signed it (a draw is bound to it)."""
    return draw_digest(author, msg.rid, msg.seq, msg.action, proposal_commitment(msg))


def draw_digest(author: str, rid: str, seq: int, action: Action, commit: bytes) -> bytes:
    """What a draw binds: the action (its author's seq on ``rid``), not the room, term or log position
    (a master cannot move a value by where or when it places the draw)."""
    return action_digest(author, rid, seq, action, commit, room="", term=0, incarnation=b"")


def waits_for_values(msg: Propose) -> bool:
    """Does the master resolve values for ``msg`` (master or fair values, or a beacon for private draws)?"""
    private = msg.private
    return (
        msg.draw
        or has_master_values(msg.action.payload)
        or (private is not None and has_master_values(private.payload))
    )


def fair_in_master_half(type_: ResourceType) -> str:
    """Why an ``mx.fair`` value in a ``private="master"`` half is refused."""
    return (
        f"{type_.name!r} hands its private halves to the master, which would see their mx.fair values: "
        "put them in the public half, or make the type private='sealed' (private draws only the author sees)"
    )


class Ledger:
    """Every player's chain, as the log left it; checks and applies ``Drawn`` entries.

    A chain is kept as the :class:`~.messages.Anchored` that relays it now: its anchor, the last
    element a draw used (``at``, ``element``: 0 and the root if none) and the next index due.
    """

    def __init__(self) -> None:
        self.chains: dict[PeerId, Anchored] = {}

    def copy(self) -> Ledger:
        """An independent copy (a new master starts from its own client's ledger)."""
        other = Ledger()
        other.chains = dict(self.chains)  # frozen: shared safely
        return other

    def relayed(self, peer: PeerId, term: Term) -> Anchored:
        """``peer``'s chain as the master of ``term`` relays it."""
        return replace(self.chains[peer], term=term)

    def anchor(self, msg: Anchored) -> bool:
        """Take a relayed anchor (its signature already checked): a new chain, or news of a known one."""
        known = self.chains.get(msg.peer)
        at, element, next_ = msg.at, msg.element or msg.root, msg.next
        if not at < next_ <= msg.length + 1:
            return False
        if known is not None and known.root == msg.root:
            if next_ <= known.next or at < known.at:
                return False  # nothing newer (a stale relay cannot move a chain back)
            if at > known.at and not verify_element(known.at, known.element, at, element, length=known.length):
                return False
            if at == known.at and element != known.element:
                return False
            self.chains[msg.peer] = replace(known, at=at, element=element, next=next_)
            return True
        valid = element == msg.root if at == 0 else verify_element(0, msg.root, at, element, length=msg.length)
        if not valid or (known is None and len(self.chains) >= MAX_PLAYERS):
            return False
        self.chains[msg.peer] = replace(msg, element=element)
        return True

    def check_element(self, peer: PeerId, at: int, element: bytes) -> str | None:
        """Why ``element`` is not ``peer``'s next chain element, or None."""
        chain = self.chains.get(peer)
        if chain is None:
            return f"{peer} has no anchored chain"
        if at != chain.next:
            return f"{peer}'s element {at} is not its next one ({chain.next})"
        if not verify_element(chain.at, chain.element, at, element, length=chain.length):
            return f"{peer}'s element {at} is not of its chain"
        return None

    def check(self, drawn: Drawn) -> str | None:
        """Why ``drawn`` is not a draw from every player's next element, or None."""
        seen: set[PeerId] = set()
        for c in drawn.contributions:
            if c.peer in seen:
                return f"{c.peer} contributes twice"
            seen.add(c.peer)
            why = self.check_element(c.peer, c.at, c.element)
            if why is not None:
                return why
        for peer in drawn.missing:
            if peer in seen or peer not in self.chains:
                return f"{peer} is named missing and is not an absent player"
            seen.add(peer)
        return None

    def consume(self, drawn: Drawn) -> None:
        """Apply a checked ``drawn``: each contributor's element is its last, each named player's index is used."""
        for c in drawn.contributions:
            self.chains[c.peer] = replace(self.chains[c.peer], at=c.at, element=c.element, next=c.at + 1)
        for peer in drawn.missing:
            chain = self.chains[peer]
            self.chains[peer] = replace(chain, next=chain.next + 1)


def seed_of(drawn: Drawn) -> bytes:
    """The seed a ``Drawn`` fixes."""
    parts = ((c.peer, c.at, c.element) for c in drawn.contributions)
    return draw_seed(drawn.rid, drawn.author, drawn.seq, drawn.digest, parts)


class Player:
    """A peer's side of fair draws: its own chain (if it plays), the ledger, and the check of each draw."""

    def __init__(self, me: PeerId, *, signer: Signer, seed: bytes | None = None, length: int = CHAIN_LENGTH) -> None:
        """With ``seed`` (unpredictable bytes) this peer contributes (``length`` draws at most, each signed
        by ``signer``); without, it only checks."""
        self.me = me
        self._length = length
        self._signer = signer
        self._chain: HashChain | None = None
        self._seed = seed
        self.ledger = Ledger()
        self._gave: tuple[Term, int] | None = None  # (term, draw index) we answered, not yet drawn
        self._gave_at = 0  # the index of the element we gave
        self._answered: Term | None = None  # we answered a draw of this term since the link to the master opened
        self._drawing: Drawing | None = None
        self._drawn: tuple[int, Drawn, bytes] | None = None  # the last Drawn: its index, it, its seed
        self._refused: int | None = None  # the log index of the last Drawn refused as forged
        self._signed: Contribute | None = None  # the last element we signed for a draw, as we sent it

    @property
    def chain(self) -> HashChain | None:
        """This peer's own chain (built on first use), or None if it does not contribute."""
        if self._chain is None and self._seed is not None:
            self._chain = HashChain(self._seed, self._length)
        return self._chain

    def anchor(self, term: Term) -> Anchor | None:
        """This peer's anchor, for a new master (None if it does not contribute)."""
        chain = self.chain
        if chain is None:
            return None
        proof = prove(self._signer, *anchor_statement(self.me, chain.root, chain.length))
        return Anchor(term=term, root=chain.root, length=chain.length, proof=proof)

    def master_changed(self, master: PeerId, term: Term) -> list[Effect]:
        """A new master: a draw left open by the last one is void; our anchor goes to it (a draw asks
        only the players whose chain it knows)."""
        self._gave = None
        self._answered = None
        self._drawing = None
        anchor = self.anchor(term)
        return [] if anchor is None else [Send(to=master, message=anchor)]

    def entry(self, msg: Drawing | Drawn, master: PeerId, entry: Callable[[int], None]) -> list[Effect]:
        """A draw's log entry from our master; ``entry(index)`` records its place in the log (not if forged)."""
        if type(msg) is Drawing:
            entry(msg.index)
            return self.drawing(msg, master)
        assert type(msg) is Drawn
        effects = self.drawn(msg, master)
        if not any(type(e) is Forged for e in effects):
            entry(msg.index)
        return effects

    def anchored(self, msg: Anchored) -> list[Effect]:
        """A relayed anchor (while a draw is open, a new chain of a player waits for the next Anchored)."""
        known = self.ledger.chains.get(msg.peer)
        if self._drawing is None or known is None or known.root == msg.root:
            self.ledger.anchor(msg)
        return []

    def drawing(self, msg: Drawing, master: PeerId) -> list[Effect]:
        """The master asks for our next element: answer once per draw (one open draw at a time).

        A player that answered a draw of this master over this link and is not asked in the next
        one knows the master chose whom to ask (see :meth:`drawn`): a forgery."""
        if self._gave is not None and self._gave[0] == msg.term and self._gave[1] != msg.index:
            return [Forged(peer=master, reason=f"a draw at {msg.index} while the draw at {self._gave[1]} is open")]
        self._drawing = msg
        chain = self.chain
        if chain is None:
            return []
        own = self.ledger.chains.get(self.me)
        if own is not None and own.root != chain.root:
            return []  # the log knows another chain of ours (an earlier process's): not ours to give
        at = 1 if own is None else own.next  # None: our anchor's relay is still on its way
        if at > chain.length:
            return []
        if self.me not in msg.players:
            if self._answered == msg.term and own is not None and master != self.me:
                why = f"the draw at {msg.index} leaves out this player, linked and asked before"
                return [Forged(peer=master, reason=why)]
            return []
        element = chain.element(at)
        self._gave = (msg.term, msg.index)
        self._gave_at = at
        self._answered = msg.term
        proof = b""  # as master, our own element: the Drawn we publish vouches for it (see verify.check)
        if master != self.me:
            parts = contribution_statement(msg.term, msg.index, msg.rid, msg.author, msg.seq, msg.digest, at, element)
            proof = prove(self._signer, *parts)
        contribute = Contribute(
            term=msg.term,
            draw=msg.index,
            rid=msg.rid,
            author=msg.author,
            seq=msg.seq,
            digest=msg.digest,
            at=at,
            element=element,
            proof=proof,
        )
        if proof:
            self._signed = contribute
        return [Send(to=master, message=contribute)]

    def signed(self, c: Contribution, drawn: Drawn) -> bool:
        """Is ``c`` in ``drawn`` exactly the element this peer signed for that draw? (Its signature needs no check.)"""
        mine = self._signed
        return (
            mine is not None
            and c.peer == self.me
            and c.proof == mine.proof
            and (c.at, c.element) == (mine.at, mine.element)
            and (drawn.term, drawn.draw, drawn.rid, drawn.author, drawn.seq, drawn.digest)
            == (mine.term, mine.draw, mine.rid, mine.author, mine.seq, mine.digest)
        )

    def refuse(self, msg: Drawn, master: PeerId, why: str) -> list[Effect]:
        """Our master's ``Drawn`` failed the verify stage (an element its player never signed for it): a forgery,
        and the entry after it is refused too (an honest master checks every signature before it publishes)."""
        self._refused = msg.index
        return [Forged(peer=master, reason=f"draw at {msg.draw}: {why}")]

    def drawn(self, msg: Drawn, master: PeerId) -> list[Effect]:
        """Check a draw against the ledger (and the Drawing it answers, if we saw it); keep its seed.

        A master sees every element before it publishes: were it free to leave some out, it would
        choose among outcomes. So a draw accounts for exactly the players its ``Drawing`` asked, the
        master never names itself missing, and a player that answered over a link that stayed up
        (the link's reopening resets :meth:`master_changed`) and is named missing refuses the draw:
        an honest master waits ``DRAW_TIMEOUT`` for a linked player, longer than a live link takes.
        """
        why = self._misses(msg, master)
        if why is None:
            why = self.ledger.check(msg)
            why = None if why is None else f"draw at {msg.draw}: {why}"
        if why is not None:
            self._refused = msg.index
            return [Forged(peer=master, reason=why)]
        self.ledger.consume(msg)
        self._gave = None
        self._drawing = None
        self._drawn = (msg.index, msg, seed_of(msg))
        if not msg.missing:
            return []
        return [DrawShort(rid=msg.rid, draw=msg.draw, missing=msg.missing, master=master)]

    def _misses(self, msg: Drawn, master: PeerId) -> str | None:
        """Why ``msg`` leaves out a player it should not have, or None (see :meth:`drawn`)."""
        if master in msg.missing and master != self.me:
            return f"the draw at {msg.draw} names its master missing (its own element is always at hand)"
        drawing = self._drawing
        if drawing is None or drawing.term != msg.term or drawing.index != msg.draw:
            return None  # we missed the Drawing: peers that saw it check
        if (drawing.rid, drawing.author, drawing.seq, drawing.digest) != (msg.rid, msg.author, msg.seq, msg.digest):
            return f"the draw at {msg.draw} is not the one the master announced"
        named = sorted([*(c.peer for c in msg.contributions), *msg.missing])
        if named != sorted(drawing.players):
            return f"the draw at {msg.draw} does not account for exactly the players it asked"
        own = self.ledger.chains.get(self.me)
        gave = self._gave == (msg.term, msg.draw) and own is not None and own.next == self._gave_at
        if gave and self.me in msg.missing and master != self.me:
            return f"the draw at {msg.draw} names this player missing, though it answered over a link that stayed up"
        return None

    def seed(self, rid: Rid, author: PeerId, seq: int) -> bytes | None:
        """The seed of the last draw if it was for that action."""
        if self._drawn is None:
            return None
        _, drawn, seed = self._drawn
        return seed if (drawn.rid, drawn.author, drawn.seq) == (rid, author, seq) else None

    def applied(self, msg: Applied, previous: int, master: PeerId) -> list[Effect]:
        """Check an entry with fair values: it follows its Drawn and holds exactly the draw's values.

        ``previous`` is the index of the last entry this peer applied: if it is not the one just
        before ``msg``, this peer missed entries and cannot tell (a peer that did not miss them can).
        Our own master's entries are not checked: we drew them.
        """
        origin = msg.origin
        if master == self.me:
            return []  # (as master, we drew it)
        if self._refused == msg.index - 1 and (msg.private or origin is not None):  # a sealed pair's beacon too
            return [Forged(peer=master, reason=f"{msg.rid} v{msg.version}: values from a forged draw")]
        if origin is None or not has_fair_values(origin.payload):
            return []
        last = self._drawn
        if last is None or last[0] != msg.index - 1:
            if previous == msg.index - 1:
                return [Forged(peer=master, reason=f"{msg.rid} v{msg.version}: fair values with no draw before them")]
            return []  # we missed the entry before: others check it
        _, drawn, seed = last
        commit = msg.commitment if msg.private else b""
        digest = draw_digest(msg.author, msg.rid, msg.seq, origin, commit)
        if (drawn.rid, drawn.author, drawn.seq, drawn.digest) != (msg.rid, msg.author, msg.seq, digest):
            return [Forged(peer=master, reason=f"{msg.rid} v{msg.version}: the draw before it is another action's")]
        expected = resolve_fair(origin.payload, seed)
        if not resolves(expected, msg.action.payload):
            return [Forged(peer=master, reason=f"{msg.rid} v{msg.version}: fair values that are not the draw's")]
        return []


@dataclass(slots=True, kw_only=True)
class _Open:
    """The running draw: its entry, the proposal it is for, who was asked, what came in, its deadline, and the
    players asked that cannot answer (a restarted process: its chain is not the one the draw asks from)."""

    drawing: Drawing
    author: PeerId
    proposal: Propose
    asked: frozenset[PeerId]
    got: dict[PeerId, Contribution]
    deadline: float
    excused: set[PeerId]

    def waits_for(self, peer: PeerId) -> bool:
        return peer in self.asked and peer not in self.got and peer not in self.excused


class Draws:
    """The master's draws: one at a time, the others wait (see the module docstring)."""

    def __init__(
        self, me: PeerId, *, term: Term, ledger: Ledger, entry: Callable[[], int], timeout: float = DRAW_TIMEOUT
    ) -> None:
        """``ledger``: the chains as this master's replica knows them; ``entry()`` numbers the next log entry."""
        self.me = me
        self.term = term
        self.ledger = ledger
        self._entry = entry
        self.timeout = timeout
        self._open: _Open | None = None
        self._queue: deque[tuple[PeerId, Propose]] = deque()
        self._seeds: dict[tuple[PeerId, Rid, int], bytes] = {}
        self._anchors: dict[PeerId, Anchor] = {}  # new chains that came while a draw ran

    @property
    def due(self) -> float | None:
        """When the running draw times out, or None."""
        return None if self._open is None else self._open.deadline

    def take_seed(self, author: PeerId, rid: Rid, seq: int) -> bytes | None:
        """The seed drawn for that action (once), or None if it has not been drawn."""
        return self._seeds.pop((author, rid, seq), None)

    def anchor(self, sender: PeerId, msg: Anchor) -> list[Effect]:
        """A player's anchor: everyone's chains to it, and its own to everyone (a chain new to this master)
        or back to it (one it knows: a player re-anchoring with a new master)."""
        known = self.ledger.chains.get(sender)
        if known is None or known.root != msg.root:
            if self._open is not None:  # a new chain waits until the running draw is drawn
                if sender in self._anchors or len(self._anchors) < MAX_PLAYERS:
                    self._anchors[sender] = msg
                if known is not None:
                    self._open.excused.add(sender)  # it cannot answer from the chain the draw asks: not waited for
                return []
            relayed = Anchored(term=self.term, peer=sender, root=msg.root, length=msg.length, proof=msg.proof)
            if not self.ledger.anchor(relayed):
                return []
        effects: list[Effect] = [
            Send(to=sender, message=replace(chain, term=self.term))
            for peer, chain in self.ledger.chains.items()
            if peer != sender
        ]
        own = self.ledger.relayed(sender, self.term)
        if known is not None and known.root == msg.root:
            effects.append(Send(to=sender, message=own))  # a new master's player re-anchoring: nothing new
        else:
            effects.append(Publish(message=own))
        return effects

    def relays(self, to: PeerId | None = None) -> list[Effect]:
        """Every chain this master knows, to ``to`` (a peer whose link just opened) or to everyone (a new
        master): a peer then holds every chain a draw it gets may use (a chain it lacks is a forgery)."""
        relayed = [replace(chain, term=self.term) for chain in self.ledger.chains.values()]
        if to is None:
            return [Publish(message=m) for m in relayed]
        return [Send(to=to, message=m) for m in relayed]

    def propose(self, sender: PeerId, msg: Propose, now: float, players: Iterable[PeerId]) -> list[Effect]:
        """A fair action: start its draw, or queue it behind the running one."""
        key = (sender, msg.rid, msg.seq)
        running = self._open
        if running is not None and (running.author, running.proposal.rid, running.proposal.seq) == key:
            return []  # re-sent while its draw runs
        if any((a, m.rid, m.seq) == key for a, m in self._queue):
            return []
        if running is not None:
            if len(self._queue) >= MAX_DRAWS_WAITING:
                raise RemoteProtocolError(f"{MAX_DRAWS_WAITING} fair actions wait for a draw already")
            self._queue.append((sender, msg))
            return []
        return self._start(sender, msg, now, players)

    def _start(self, sender: PeerId, msg: Propose, now: float, players: Iterable[PeerId]) -> list[Effect]:
        digest = proposal_digest(sender, msg)
        drawing = Drawing(term=self.term, index=self._entry(), rid=msg.rid, author=sender, seq=msg.seq, digest=digest)
        chains = self.ledger.chains
        asked = frozenset(p for p in {*players, self.me} if p in chains and chains[p].next <= chains[p].length)
        drawing = replace(drawing, players=tuple(sorted(asked)))
        deadline = now + self.timeout
        self._open = _Open(
            drawing=drawing, author=sender, proposal=msg, asked=asked, got={}, deadline=deadline, excused=set()
        )
        return [Publish(message=drawing)]

    def contribute(self, sender: PeerId, msg: Contribute) -> bool:
        """A player's element (its signature already checked): True once every player asked answered."""
        running = self._open
        if running is None or sender not in running.asked or sender in running.got:
            return False
        d = running.drawing
        if (msg.term, msg.draw, msg.rid, msg.author, msg.seq, msg.digest) != (
            d.term,
            d.index,
            d.rid,
            d.author,
            d.seq,
            d.digest,
        ):
            return False  # an answer to another draw
        if self.ledger.check_element(sender, msg.at, msg.element) is not None:
            return False  # not its next element: every peer would refuse the draw
        running.got[sender] = Contribution(peer=sender, at=msg.at, element=msg.element, proof=msg.proof)
        return self.complete()

    def complete(self) -> bool:
        """True if a draw runs and no player it asked is still awaited."""
        running = self._open
        return running is not None and not any(running.waits_for(p) for p in running.asked)

    def players_left(self, players: Iterable[PeerId]) -> bool:
        """Connected players changed: True if every player still connected has answered."""
        running = self._open
        if running is None:
            return False
        here = {*players, self.me}
        return not any(running.waits_for(p) for p in running.asked if p in here)

    def timed_out(self, now: float) -> bool:
        """True if the running draw's time is up."""
        return self._open is not None and now >= self._open.deadline

    def resolve(self) -> tuple[list[Effect], tuple[PeerId, Propose] | None]:
        """Publish the running draw with what came in; the proposal to apply now (its seed is kept)."""
        running = self._open
        if running is None:
            return [], None
        self._open = None
        d = running.drawing
        drawn = Drawn(
            term=self.term,
            index=self._entry(),
            draw=d.index,
            rid=d.rid,
            author=d.author,
            seq=d.seq,
            digest=d.digest,
            contributions=tuple(sorted(running.got.values(), key=lambda c: c.peer)),
            missing=tuple(sorted(running.asked - running.got.keys())),
        )
        self.ledger.consume(drawn)
        self._seeds[(d.author, d.rid, d.seq)] = seed_of(drawn)
        return [Publish(message=drawn)], (running.author, running.proposal)

    def next(self, now: float, players: Iterable[PeerId]) -> list[Effect]:
        """Anchor the chains that waited, then start the next waiting draw, if none runs."""
        if self._open is not None:
            return []
        effects: list[Effect] = []
        waiting, self._anchors = self._anchors, {}
        for sender, anchor in waiting.items():
            effects += self.anchor(sender, anchor)
        if not self._queue:
            return effects
        sender, msg = self._queue.popleft()
        return effects + self._start(sender, msg, now, players)

    def forget(self, rid: Rid) -> None:
        """``rid`` was removed: its waiting draws go (a running one still resolves)."""
        self._queue = deque((a, m) for a, m in self._queue if m.rid != rid)

    def forget_peers(self, gone: Callable[[PeerId], bool]) -> None:
        """Drop the waiting fair actions (and chains) of departed peers."""
        self._queue = deque((a, m) for a, m in self._queue if not gone(a))
        self._anchors = {p: a for p, a in self._anchors.items() if not gone(p)}
