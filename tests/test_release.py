"""A new master serves what waited for its recovery in slices, in arrival order (issue 15, 12 peers).

Deterministic: the resource cores driven directly (movex_p2p.testing.cores.CoreCluster), fake
signatures, a hand-advanced clock.
"""

from __future__ import annotations

from typing import Any

import movex_p2p as mx
from movex_p2p.ids import PeerId
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.waiting import RELEASE_SLICE
from movex_p2p.testing.cores import CoreCluster
from tests.resources import ALL_TYPES

C = "counter:c1"
BURST = 100


def _applied(effects: list[fx.Effect]) -> list[rm.Applied]:
    return [e.message for e in effects if isinstance(e, fx.Publish) and isinstance(e.message, rm.Applied)]


def _recovered_with_bursts_waiting(peers: int) -> tuple[CoreCluster, list[list[rm.Applied]]]:
    """The master killed, every survivor's burst queued behind the new master's recovery, which just
    ended; and what each master step or tick published since, a list per call."""
    c = CoreCluster(peers, types=ALL_TYPES)
    c.setup(C)
    c.kill(c.ids[0])
    c.elect(c.ids[1], 2, deliver=False)
    for p in c.ids[1:]:
        for _ in range(BURST):
            c.dispatch(p, C, mx.Action("increment"))
    calls: list[list[rm.Applied]] = []
    step, tick = c.master.step, c.master.tick

    def counted_step(sender: PeerId, message: rm.ToMaster, now: float, **kw: Any) -> list[fx.Effect]:
        effects = step(sender, message, now, **kw)
        calls.append(_applied(effects))
        return effects

    def counted_tick(now: float, **kw: Any) -> list[fx.Effect]:
        effects = tick(now, **kw)
        calls.append(_applied(effects))
        return effects

    c.master.step, c.master.tick = counted_step, counted_tick  # type: ignore[method-assign]
    while c.master.recovering:  # deliver until the last report ends the recovery
        src, dst = c.pending_links()[0]
        c.deliver(src, dst)
    return c, calls


def test_a_burst_that_waited_for_recovery_is_served_in_slices_due_at_once() -> None:
    c, calls = _recovered_with_bursts_waiting(12)
    assert len(c.master.waiting) > 0, "the recovery did not end with the burst waiting"
    assert c.master.due == c.now  # the next slice, at once
    c.run()
    served = [len(applied) for applied in calls if applied]
    assert max(served) <= RELEASE_SLICE
    assert sum(served) >= 11 * BURST
    assert len(served) > 11 * BURST // RELEASE_SLICE
    assert len(c.master.waiting) == 0
    assert c.master.due is None
    for p in c.ids[1:]:
        assert c.view(p, C) == {"count": 11 * BURST}
    assert len(c.checksums(C)) == 1


def test_what_arrives_between_slices_is_served_after_everything_that_waited() -> None:
    c, calls = _recovered_with_bursts_waiting(12)
    waited = len(c.master.waiting)
    assert waited > RELEASE_SLICE
    late = next(p for p in c.ids[2:] if not c.links[(p, c.master_id)])  # its burst is all at the master
    ahead = {(sender, m.seq) for sender, m in c.master.waiting.queue if type(m) is rm.Propose}
    seq = c.dispatch(late, C, mx.Action("increment"))
    c.deliver(late, c.master_id)  # before the next slice is due
    assert len(c.master.waiting) == waited - RELEASE_SLICE + 1, "it was not queued behind the slices still due"
    c.run()
    order = [(a.author, a.seq) for applied in calls for a in applied]
    assert ahead <= set(order[: order.index((late, seq))]), "something that waited came after it"
    assert len(order) == len(set(order)) == 11 * BURST + 1
    for p in c.ids[1:]:  # each author's actions in the order it sent them
        seqs = [s for author, s in order if author == p]
        assert seqs == sorted(seqs)
    assert c.view(late, C) == {"count": 11 * BURST + 1}
