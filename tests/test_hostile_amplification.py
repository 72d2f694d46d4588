"""P2, amplification: a member's small requests never make the master send more than that member's budget.

Release 0.2 answered every ~50-byte ``Report`` (empty ``have``) or ``SyncRequest`` with full snapshots,
each encoded anew: 63 Reports against a 4 MB resource took the master from 78 to 350 MB RSS. Here a
harness sends the raw messages a modified client would (not through our client's API) to a real
master NodeCore, with an honest NodeCore client (Carol) beside it; time is advanced by hand.
"""

from __future__ import annotations

import random
from collections import deque

import pytest

from movex_p2p import wire
from movex_p2p.election.machine import ElectionConfig
from movex_p2p.errors import RemoteProtocolError
from movex_p2p.identity import Identity
from movex_p2p.ids import PeerId, Rid, Term
from movex_p2p.nodecore import NodeCore, Ready
from movex_p2p.outbox import FRAME_TARGET
from movex_p2p.resource import budget as bd
from movex_p2p.resource import messages as rm
from movex_p2p.resource.effects import Send
from movex_p2p.resource.replica import Replica
from movex_p2p.resource.state import freeze
from movex_p2p.resource.types import Action
from movex_p2p.signing import ED25519
from movex_p2p.transport.base import Frame, PeerUp
from tests.resources import Blob, Counter

ME, CAROL = Identity(b"1" * 32), Identity(b"3" * 32)
EVIL, EVE = Identity(b"9" * 32), Identity(b"8" * 32)
RAW = (EVIL, EVE)
BIG = FRAME_TARGET + 500_000
"""A blob over the frame target: its snapshot is a frame of its own (the encoded bytes themselves)."""


def node(identity: Identity) -> NodeCore:
    return NodeCore(
        identity.id,
        types={"counter": Counter, "blob": Blob},
        election=ElectionConfig(),
        rng=random.Random(identity.id),
        signer=identity,
        verifier=ED25519,
    )


class Bed:
    """A master, Carol (an honest client) and raw members linked to both; frames arrive at once, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cores = {ME.id: node(ME), CAROL.id: node(CAROL)}
        self.inbox: deque[tuple[PeerId, PeerId, bytes]] = deque()
        self.to_raw: dict[PeerId, list[tuple[PeerId, bytes]]] = {r.id: [] for r in RAW}
        """What each raw member was sent, and by whom."""
        self.asked: dict[PeerId, int] = {r.id: 0 for r in RAW}
        self.dropped: list[str] = []
        for pid, core in self.cores.items():
            self.execute(pid, core.start(0.0, 0.0))
            others = [p for p in (ME.id, CAROL.id, *self.to_raw) if p != pid]
            self.execute(pid, core.receive([PeerUp(peer=p) for p in others], 0.0, 0.0))
        self.settle()
        while not any(core.master is not None and not core.master.recovering for core in self.cores.values()):
            self.advance(0.05)
            assert self.now < 10, "no master"
        self.master = next(core for core in self.cores.values() if core.master is not None)
        self.carol = next(core for core in self.cores.values() if core is not self.master)
        self.rid = Blob.rid("big")
        self.counter = Counter.rid("c")
        _, ready = self.master.create(self.rid, {"data": bytes(BIG)}, self.now, self.now)
        self.execute(self.master.me, ready)
        _, ready = self.master.create(self.counter, None, self.now, self.now)
        self.execute(self.master.me, ready)
        self.advance(0.01)
        assert self.carol.client.has(self.rid)
        assert self.carol.client.has(self.counter)
        self.forget()

    @property
    def term(self) -> Term:
        assert self.master.master is not None
        return self.master.master.term

    @property
    def answers(self) -> bd.Answers:
        assert self.master.master is not None
        return self.master.master.answers

    def execute(self, src: PeerId, ready: Ready) -> None:
        assert ready.faults == [], ready.faults
        self.dropped += [d.reason for d in ready.dropped]
        frames = [*ready.frames.items(), *ready.more, *ready.datagrams.items()]
        for dst, data in frames:
            if dst in self.to_raw:
                self.to_raw[dst].append((src, data))
            else:
                self.inbox.append((dst, src, data))

    def settle(self) -> None:
        while self.inbox:
            dst, src, data = self.inbox.popleft()
            self.execute(dst, self.cores[dst].receive([Frame(peer=src, data=data)], self.now, self.now))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass in steps of at most 10 ms, every timer firing when due."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + 0.01)
            for pid, core in self.cores.items():
                self.execute(pid, core.step([], self.now, self.now))
            self.settle()

    def raw(self, sender: Identity, *messages: wire.Message) -> None:
        """What a modified client sends, straight to the master (one frame)."""
        data = wire.encode_many(list(messages))
        self.asked[sender.id] += len(data)
        self.execute(self.master.me, self.master.receive([Frame(peer=sender.id, data=data)], self.now, self.now))
        self.settle()

    def forget(self) -> None:
        for frames in self.to_raw.values():
            frames.clear()
        for pid in self.asked:
            self.asked[pid] = 0

    def frames(self, peer: Identity) -> list[bytes]:
        """The frames the master sent ``peer``."""
        return [data for src, data in self.to_raw[peer.id] if src == self.master.me]

    def received(self, peer: Identity) -> list[wire.Message]:
        return [m for data in self.frames(peer) for m in wire.decode(data)]

    def sent(self, peer: Identity) -> int:
        return sum(len(data) for data in self.frames(peer))

    def count(self) -> int:
        """Carol's confirmed count."""
        return int(self.carol.client.replicas[self.counter].state["count"])


def snapshots(messages: list[wire.Message]) -> list[rm.Snapshot]:
    return [m for m in messages if isinstance(m, rm.Snapshot)]


def test_a_report_flood_gets_at_most_its_budget_and_each_report_its_answer() -> None:
    """0.2: 63 Reports with an empty ``have`` got 63 full snapshots (here 63 x 1.5 MB)."""
    bed = Bed()
    start = bed.now
    for req in range(1, 64):
        bed.raw(EVIL, rm.Report(term=bed.term, req=req, have={}))
        bed.advance(0.01)
    budget = bed.answers.budget
    allowed = budget.burst + budget.rate * (bed.now - start) + 2 * bed.asked[EVIL.id]
    assert bed.sent(EVIL) <= allowed
    got = bed.received(EVIL)
    assert len([s for s in snapshots(got) if s.rid == bed.rid]) == 2  # a full bucket: two recoveries at once
    assert bed.answers.owed <= 1 + 2 + 61  # one snapshot of each resource, the secrets, the replies: coalesced
    bed.advance(bd.REFILL)  # the bucket refills: what is owed goes out, once
    got = bed.received(EVIL)
    assert len([s for s in snapshots(got) if s.rid == bed.rid]) == 3
    assert sorted(m.req for m in got if isinstance(m, rm.Replied)) == list(range(1, 64))  # every report answered
    assert bed.answers.owed == 0


def test_a_sync_request_flood_gets_at_most_its_budget() -> None:
    """0.2: every SyncRequest of ~50 bytes got a full snapshot."""
    bed = Bed()
    start = bed.now
    for _ in range(200):
        bed.raw(EVIL, rm.SyncRequest(term=bed.term, rid=bed.rid), rm.SyncRequest(term=bed.term, rid=bed.rid))
        bed.advance(0.01)
    budget = bed.answers.budget
    assert bed.sent(EVIL) <= budget.burst + budget.rate * (bed.now - start) + 2 * bed.asked[EVIL.id]
    assert bed.answers.owed <= 1  # one snapshot owed, however often it is asked for
    assert len(snapshots(bed.received(EVIL))) == 2  # two at once; a third waits for a room's worth of refill
    due = bed.answers.due
    assert due is not None
    assert due - start <= bd.REFILL / bd.ROOMS
    assert bed.answers.budget.charged[EVIL.id] <= budget.burst + budget.rate * (bed.now - start)


def test_reports_waiting_for_their_answer_are_bounded_and_refused_with_a_reason() -> None:
    bed = Bed()
    for req in range(1, 3 + bd.MAX_REPLIES + 10):
        bed.raw(EVIL, rm.Report(term=bed.term, req=req, have={}))
    assert any(f"{bd.MAX_REPLIES} reports already wait" in reason for reason in bed.dropped)
    assert bed.answers.owed <= 2 + 1 + bd.MAX_REPLIES  # a snapshot of each resource, the secrets, the replies


def test_one_snapshot_per_position_is_built_and_encoded_once_for_every_requester() -> None:
    """0.2: every request encoded its own copy (63 requests held 63 copies of the state)."""
    bed = Bed()
    built = bed.answers.shared.built
    for sender in (EVIL, EVE, EVIL):
        bed.raw(sender, rm.SyncRequest(term=bed.term, rid=bed.rid))
    assert bed.answers.shared.built == built + 1
    big = [data for peer in RAW for data in bed.frames(peer) if len(data) > FRAME_TARGET]
    assert len(big) == 3
    assert all(data is big[0] for data in big)
    assert bed.answers.shared.held_bytes == len(big[0])
    bed.master.dispatch(bed.rid, Action("put", b"small"), None, bed.now, bed.now)
    bed.advance(0.01)
    assert bed.answers.shared.held_bytes == 0  # the resource changed: its old bytes are not kept


def test_another_clients_play_is_untouched_by_the_flood() -> None:
    """Carol dispatches every 10 ms while a member floods Reports and SyncRequests: each of her
    actions is confirmed in the step it reaches the master, and the master builds three snapshots in all."""
    bed = Bed()
    built = bed.answers.shared.built
    start = bed.now
    confirmed: list[int] = []
    for i in range(100):
        bed.raw(EVIL, rm.Report(term=bed.term, req=i + 1, have={}), rm.SyncRequest(term=bed.term, rid=bed.rid))
        _, ready = bed.carol.dispatch(bed.counter, Action("increment"), None, bed.now, bed.now)
        bed.execute(bed.carol.me, ready)
        bed.advance(0.01)
        confirmed.append(bed.count())
    assert confirmed == list(range(1, 101))  # each one confirmed within its own 10 ms
    budget = bed.answers.budget  # the master's work for the flood: what its budget allows, no more
    assert bed.sent(EVIL) <= budget.burst + budget.rate * (bed.now - start) + 2 * bed.asked[EVIL.id]
    assert bed.answers.shared.built - built <= 6  # two blobs at once, one as the bucket refilled, a few counters
    assert bed.dropped == [] or all("reports already wait" in r for r in bed.dropped)


def test_a_newcomer_and_a_peer_recovering_twice_get_their_snapshots_at_once() -> None:
    """Legit recovery is never deferred by someone else's flood, and two in a row go at once too."""
    bed = Bed()
    for req in range(1, 40):
        bed.raw(EVIL, rm.Report(term=bed.term, req=req, have={}))
    for req in (1, 2):
        bed.raw(EVE, rm.Report(term=bed.term, req=req, have={}))  # a newcomer, then the same again
        got = bed.received(EVE)
        assert {s.rid for s in snapshots(got)} == {bed.rid, bed.counter}
        assert [m.req for m in got if isinstance(m, rm.Replied)] == [req]
        bed.forget()


def test_an_owed_snapshot_is_the_latest_state_when_it_is_paid() -> None:
    bed = Bed()
    for _ in range(3):
        bed.raw(EVIL, rm.SyncRequest(term=bed.term, rid=bed.rid))
    assert bed.answers.owed == 1
    bed.master.dispatch(bed.rid, Action("put", b"new"), None, bed.now, bed.now)
    bed.advance(bd.REFILL)
    last = snapshots(bed.received(EVIL))[-1]
    assert last.state == {"data": b"new"}
    assert bed.answers.owed == 0
    master = bed.master.master
    assert master is not None
    assert last.version == master.resource(bed.rid).version  # type: ignore[union-attr]


# -- the pure parts -------------------------------------------------------------------------------


def test_a_bucket_pays_its_burst_then_refills_at_its_rate() -> None:
    budget = bd.Budget(burst=1000, rate=100.0)
    peer = PeerId("p")
    assert budget.affords(peer, 1000, 0.0)
    budget.charge(peer, 700, 0.0)
    assert not budget.affords(peer, 400, 0.0)
    assert budget.when(peer, 400, 0.0) == pytest.approx(1.0)
    assert budget.affords(peer, 400, 1.0)
    assert budget.tokens(peer, 100.0) == 1000  # never more than the burst
    budget.charge(peer, 5000, 100.0)  # one answer larger than the burst goes from a full bucket ...
    assert budget.tokens(peer, 100.0) == -4000  # ... and the bucket owes it
    assert budget.tokens(peer, 99.0) == -4000  # a clock that went back refills nothing
    budget.resize(10_000)
    assert budget.burst == bd.ROOMS * 10_000 + bd.MIN_BURST
    assert budget.rate == max(bd.MIN_RATE, budget.burst / bd.REFILL)


def test_buckets_kept_are_bounded_and_full_ones_forgotten() -> None:
    budget = bd.Budget(burst=1000, rate=100.0)
    for i in range(bd.KEPT_BUCKETS + 50):
        budget.charge(PeerId(f"p{i}"), 10, 0.0)
    assert len(budget.kept) == bd.KEPT_BUCKETS
    assert len(budget.charged) == bd.KEPT_BUCKETS
    budget.charge(PeerId("late"), 10, 60.0)  # every older bucket refilled meanwhile
    assert budget.kept == ["late"]


def _replica(rid: str, data: bytes) -> Replica:
    res = Replica(rid=Rid(rid), type=Blob, state=freeze({"data": data}))
    res.advance(Term(1), 1)
    return res


def test_answers_coalesce_per_peer_and_resource_and_keep_their_order() -> None:
    resources = {Rid("blob:a"): _replica("blob:a", bytes(100_000)), Rid("blob:b"): _replica("blob:b", b"b")}
    answers = bd.Answers(term=Term(1), resources=resources)
    peer = PeerId("p")
    answers.snapshot(peer, Rid("blob:a"))
    answers.snapshot(peer, Rid("blob:b"))
    answers.reply(peer, 7)
    answers.snapshot(peer, Rid("blob:a"))  # already owed: nothing more
    assert answers.owed == 3
    answers.budget.resize(bd.room_bytes(resources))
    answers.budget.charge(peer, answers.budget.burst, 0.0)  # an empty bucket
    assert answers.pay(peer, 0.0, index=5) == []
    due = answers.due
    assert due is not None
    assert due > 0
    assert answers.shared.built == 1  # a's snapshot, to know what it costs
    assert answers.pay(peer, due / 2, index=5) == []  # not yet: nothing is even looked at
    assert answers.shared.built == 1
    answers.holds(peer, Rid("blob:a"))  # it reported holding ours meanwhile: not needed, look again
    assert answers.due == float("-inf")
    sent = answers.tick(due / 2, index=5)  # enough for b (a would not have gone yet)
    assert [type(s.message).__name__ for s in sent if isinstance(s, Send)] == [
        "Snapshot",
        "Replied",
    ]  # b, then the reply
    assert answers.owed == 0
    assert answers.due is None


def test_answers_to_a_peer_that_left_or_for_a_removed_resource_are_dropped() -> None:
    resources = {Rid("blob:a"): _replica("blob:a", b"a")}
    answers = bd.Answers(term=Term(1), resources=resources)
    answers.snapshot(PeerId("p"), Rid("blob:a"))
    answers.snapshot(PeerId("q"), Rid("blob:a"))
    answers.left(PeerId("p"))
    answers.removed(Rid("blob:a"))
    assert answers.owed == 0
    for req in range(bd.MAX_REPLIES):
        answers.reply(PeerId("q"), req)
    with pytest.raises(RemoteProtocolError, match="already wait"):
        answers.reply(PeerId("q"), 99)


def test_a_peer_owed_nothing_any_more_leaves_no_timer_behind() -> None:
    resources = {Rid("blob:a"): _replica("blob:a", bytes(100_000))}
    answers = bd.Answers(term=Term(1), resources=resources)
    peer = PeerId("p")
    answers.snapshot(peer, Rid("blob:a"))
    answers.budget.charge(peer, 10**9, 0.0)  # an empty bucket: the snapshot waits
    assert answers.pay(peer, 0.0, index=1) == []
    answers.holds(peer, Rid("blob:a"))  # the only thing owed is no longer needed
    assert answers.tick(0.0, index=1) == []
    assert answers.due is None  # no timer left to fire over and over


def test_the_masters_own_client_has_no_budget() -> None:
    resources = {Rid("blob:a"): _replica("blob:a", bytes(100_000))}
    me = PeerId("me")
    answers = bd.Answers(me=me, term=Term(1), resources=resources)
    for _ in range(10):  # its own requests are answered locally, as often as it asks
        answers.snapshot(me, Rid("blob:a"))
        assert len(answers.pay(me, 0.0, index=1)) == 1
    assert me not in answers.budget.charged
