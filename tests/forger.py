"""A dishonest master for the fork tests: it signs whatever history it likes for each peer.

Honest peers are real signed NodeCores; the master is the test, holding its own key. A
:class:`Branch` is the history it tells one peer: each entry numbered as the forger chooses,
each step sealed as an honest master would seal it (the signature is valid: the forger is the
master), so only what the peers compare can catch it. The authors' endorsements are the ones
their real NodeCores sent (:func:`proposals`), as a master that reorders or replays signed
actions would hold them.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import movex_p2p as mx
from movex_p2p import wire
from movex_p2p.election import messages as em
from movex_p2p.election.machine import ElectionConfig, salt_of
from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.nodecore import NodeCore, Ready
from movex_p2p.proofs import prove
from movex_p2p.resource import messages as rm
from movex_p2p.resource.effects import Forged
from movex_p2p.resource.history import head, removed_head, seal, seal_digest
from movex_p2p.resource.state import checksum, freeze
from movex_p2p.signing import ED25519
from movex_p2p.transport.base import Frame, PeerUp

ALICE, BOB, EVIL = Identity(b"a" * 32), Identity(b"b" * 32), Identity(b"e" * 32)
TERM = Term((1 << 32) | salt_of(EVIL.id))


def race(state: Any, action: mx.Action) -> Any:
    """First to claim wins; a counter to play on."""
    match action:
        case mx.Action("claim") if state["winner"] is None:
            return {**state, "winner": action.author}
        case mx.Action("incrementBy", n):
            return {**state, "n": state["n"] + n}
        case mx.Action("decrement"):
            return {**state, "n": state["n"] - 1}
    return state


Race = mx.ResourceType("race", race, initial={"winner": None, "n": 0})
RID = Race.rid("r")


def follower(me: Identity, *others: Identity, room: str = "castle") -> NodeCore:
    """A real signed peer linked to EVIL and ``others``, following EVIL (certified by everyone's votes)."""
    core = NodeCore(
        me.id,
        types={"race": Race},
        election=ElectionConfig(),
        rng=random.Random(me.id),
        signer=me,
        verifier=ED25519,
        room=room,
    )
    core.start(0.0, 0.0)
    core.receive([PeerUp(peer=p.id) for p in (EVIL, *others)], 0.0, 0.0)
    cert = tuple(prove(v, "vote", TERM, EVIL.id) for v in (ALICE, BOB, EVIL))
    heartbeat = em.Heartbeat(term=TERM, seq=1, successors=(), cert=cert)
    core.receive([Frame(peer=EVIL.id, data=wire.encode_many([heartbeat]))], 0.01, 0.01)
    assert core.election.master == EVIL.id
    return core


def send(core: NodeCore, sender: Identity | PeerId, messages: Sequence[wire.Message], now: float) -> Ready:
    """``sender``'s frame of ``messages`` reaches ``core``."""
    peer = sender if isinstance(sender, str) else sender.id
    ready = core.receive([Frame(peer=PeerId(peer), data=wire.encode_many(list(messages)))], now, now)
    assert ready.faults == []
    return ready


def to(ready: Ready, peer: Identity) -> list[wire.Message]:
    """What a Ready sends ``peer`` (reliable lane)."""
    frames = [ready.frames[peer.id]] if peer.id in ready.frames else []
    frames += [data for p, data in ready.more if p == peer.id]
    return [m for data in frames for m in wire.decode(data)]


def forks(ready: Ready) -> list[Forged]:
    return [e for e in ready.events if isinstance(e, Forged)]


def proposals(core: NodeCore, *actions: mx.Action, now: float) -> tuple[rm.Endorsed, list[rm.Propose]]:
    """``core`` dispatches ``actions``; what it signs and sends its master (EVIL), as EVIL holds it."""
    for action in actions:
        core.dispatch(RID, action, None, now, now)
    sent = to(core.step([], now, now), EVIL)
    endorse = next(m for m in sent if isinstance(m, rm.Endorse))
    endorsed = rm.Endorsed(term=endorse.term, author=core.me, digests=endorse.digests, proof=endorse.proof)
    return endorsed, [m for m in sent if isinstance(m, rm.Propose)]


@dataclass
class Branch:
    """The history the forger tells one peer, numbered from ``index`` on, sealed step by step."""

    index: int = 0
    began: int = 0
    sealed_at: int = 0
    chain: bytes = b""
    states: dict[Rid, Any] = field(default_factory=dict)
    versions: dict[Rid, int] = field(default_factory=dict)
    applied: dict[Rid, dict[str, int]] = field(default_factory=dict)
    dirty: set[Rid] = field(default_factory=set)
    incarnations: dict[Rid, bytes] = field(default_factory=dict)

    def next(self) -> int:
        self.index += 1
        return self.index

    def begin(self) -> rm.Began:
        self.began = self.sealed_at = self.next()
        return rm.Began(term=TERM, index=self.began)

    def create(self, rid: Rid = RID, state: Any = None, incarnation: bytes = b"i" * 16) -> rm.Created:
        frozen = freeze(Race.initial if state is None else state)
        self.states[rid], self.versions[rid], self.applied[rid] = frozen, 0, {}
        self.incarnations[rid] = incarnation
        self.dirty.add(rid)
        index = self.next()
        return rm.Created(
            term=TERM, index=index, rid=rid, state=frozen, checksum=checksum(frozen), incarnation=incarnation
        )

    def apply(self, propose: rm.Propose, author: PeerId, rid: Rid = RID) -> rm.Applied:
        action = propose.action.by(author)
        self.states[rid] = freeze(Race.reduce(self.states[rid], action))
        self.versions[rid] += 1
        self.applied[rid][author] = propose.seq
        self.dirty.add(rid)
        return rm.Applied(
            term=TERM,
            index=self.next(),
            rid=rid,
            version=self.versions[rid],
            author=author,
            seq=propose.seq,
            action=action,
            private=False,
            checksum=checksum(self.states[rid]),
            now=0.0,
        )

    @staticmethod
    def replace(entry: rm.Applied, *, index: int) -> rm.Applied:
        """``entry`` renumbered (a replay)."""
        return dataclasses.replace(entry, index=index)

    def remove(self, rid: Rid = RID) -> rm.Removed:
        del self.states[rid]
        self.dirty.add(rid)
        return rm.Removed(term=TERM, index=self.next(), rid=rid)

    def seal(self) -> rm.Sealed:
        """Seal the step, as an honest master: the heads changed since the last seal, the next link of the chain."""
        heads = [
            head(rid, self.versions[rid], checksum(self.states[rid]), self.applied[rid], (), self.incarnations[rid])
            if rid in self.states
            else removed_head(rid)
            for rid in sorted(self.dirty)
        ]
        self.dirty.clear()
        sealed = seal(EVIL, TERM, self.index, heads, began=self.began, prev=self.sealed_at, chain=self.chain)
        self.sealed_at, self.chain = self.index, seal_digest(sealed)
        return sealed
