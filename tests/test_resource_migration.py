"""Master migration at the core level: a new MasterCore built from a client's replicas."""

from __future__ import annotations

from collections import Counter as Tally

import movex_p2p as mx
from movex_p2p.ids import Rid, Term
from movex_p2p.resource import messages as rm
from movex_p2p.testing.cores import CoreCluster
from tests.resources import ALL_TYPES, SECRET, submit
from tests.test_resource_cores import no_resyncs, roll_payload

C = "counter:c1"


def applied_keys(c: CoreCluster, rid: str) -> Tally[tuple[str, int]]:
    """(author, seq) of every Applied the masters broadcast to their own client."""
    return Tally(
        (m.author, m.seq) for src, dst, m in c.delivered if isinstance(m, rm.Applied) and src == dst and m.rid == rid
    )


def test_migration_with_pending_actions_applies_nothing_twice() -> None:
    c = CoreCluster(4, types=ALL_TYPES)
    c.setup(C)
    p0, p1, p2, p3 = c.ids
    s1 = c.dispatch(p1, C, mx.Action("increment"))
    s2 = c.dispatch(p1, C, mx.Action("incrementBy", 10))
    s3 = c.dispatch(p3, C, mx.Action("incrementBy", 100))
    # the master applies p1's two actions; p2 hears of both, p1 of neither; p3's is never received
    while c.links[(p1, p0)]:
        c.deliver(p1, p0)
    while c.links[(p0, p2)]:
        c.deliver(p0, p2)
    c.kill(p0)
    assert c.view(p2, C) == {"count": 11}
    assert c.clients[p1].replicas[Rid(C)].state == {"count": 0}
    c.elect(p2, 2)
    c.run(shuffle=True)
    for p in (p1, p2, p3):
        assert c.view(p, C) == {"count": 111}
        assert c.clients[p].pending(Rid(C)) == []
    assert len(c.checksums(C)) == 1
    assert [c.settled(p1, s).error for s in (s1, s2)] == [None, None]
    assert c.settled(p3, s3).error is None
    keys = applied_keys(c, C)
    assert all(n == 1 for n in keys.values()), keys
    terms = {(m.term, m.seq) for m in c.sent(rm.Applied) if m.author == p3}
    assert terms == {(c.term_of(2, p2), 1)}


def test_migration_keeps_resolved_master_values() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup("dice:d")
    p0, p1, p2 = c.ids
    c.dispatch(p1, "dice:d", mx.Action("roll", roll_payload()))
    while c.links[(p1, p0)]:
        c.deliver(p1, p0)
    while c.links[(p0, p2)]:
        c.deliver(p0, p2)
    before = c.view(p2, "dice:d")["rolls"]
    assert len(before) == 1
    c.kill(p0)
    c.now += 50.0
    c.elect(p2, 2)  # p1 re-submits its (unconfirmed) roll: it must not be re-drawn
    for p in (p1, p2):
        assert c.view(p, "dice:d")["rolls"] == before
    assert len(c.checksums("dice:d")) == 1


def test_reveal_after_migration_shows_every_secret() -> None:
    c = CoreCluster(4, types=ALL_TYPES)
    c.setup("rps:g")
    p0, a, b, spectator = c.ids
    c.dispatch(a, "rps:g", mx.Action("addPlayer", {"id": "p1", "playerLabel": "playerA"}))
    c.dispatch(b, "rps:g", mx.Action("addPlayer", {"id": "p2", "playerLabel": "playerB"}))
    c.run()
    c.dispatch_private(a, "rps:g", *submit("playerA", "paper"))
    c.run()
    c.kill(p0)
    c.elect(b, 2)  # built from b's replica: it only holds a *reference* to a's secret
    assert c.sent(rm.Restore)  # a re-delivered the private half
    assert c.view(a, "rps:g")["submissions"]["playerA"] == {"play": "paper"}
    assert c.view(b, "rps:g")["submissions"]["playerA"] == {"play": SECRET}
    c.dispatch_private(b, "rps:g", *submit("playerB", "rock"))
    c.run(shuffle=True)
    for p in (a, b, spectator):
        view = c.view(p, "rps:g")
        assert view["submissions"] == {"playerA": {"play": "paper"}, "playerB": {"play": "rock"}}
        assert view["winner"] == "paper"
    assert len(c.checksums("rps:g")) == 1
    no_resyncs(c)


def test_a_newer_replica_is_pulled_by_the_new_master() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    p0, p1, p2 = c.ids
    c.dispatch(p2, C, mx.Action("incrementBy", 5))
    while c.links[(p2, p0)]:
        c.deliver(p2, p0)
    while c.links[(p0, p2)]:
        c.deliver(p0, p2)  # only p2 holds version 1
    c.kill(p0)
    c.elect(p1, 2)  # p1 is behind: it must pull p2's replica before serving
    assert c.sent(rm.Pull)
    c.dispatch(p1, C, mx.Action("increment"))
    c.run()
    for p in (p1, p2):
        assert c.view(p, C) == {"count": 6}
    assert len(c.checksums(C)) == 1
    assert c.master.resource(Rid(C)) is not None
    assert not c.master.recovering


def test_old_terms_are_fenced() -> None:
    c = CoreCluster(3, types=ALL_TYPES)
    c.setup(C)
    p0, p1, p2 = c.ids
    c.kill(p0)
    c.elect(p1, 2)
    # a late message of the dead master's term changes nothing
    stale = rm.Applied(
        term=Term(1),
        index=99,
        rid=Rid(C),
        version=1,
        author=p2,
        seq=1,
        action=mx.Action("incrementBy", 1000),
        private=False,
        checksum=b"x" * 16,
        now=0.0,
    )
    assert c.clients[p2].step(p0, stale, c.now) == []
    assert c.master.step(p2, rm.Propose(term=Term(1), rid=Rid(C), seq=5, base=4, action=mx.Action("boom")), c.now) == []
    assert c.view(p2, C) == {"count": 0}
