"""Property: any interleaving of actions and deliveries converges to the master's sequential replay."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import movex_p2p as mx
from movex_p2p.ids import Rid
from movex_p2p.resource import effects as fx
from movex_p2p.resource import messages as rm
from movex_p2p.resource.replica import replay
from movex_p2p.resource.state import checksum, freeze
from movex_p2p.testing.cores import CoreCluster
from tests.resources import ALL_TYPES, Counter

RID = "counter:p"
INITIAL: dict[str, Any] = {"count": 0, "items": []}

actions = st.one_of(
    st.just(mx.Action("increment")),
    st.integers(-5, 5).map(lambda n: mx.Action("incrementBy", n)),
    st.integers(0, 99).map(lambda n: mx.Action("append", n)),
)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(2, 5),
    seed=st.integers(0, 2**32),
    ops=st.lists(st.tuples(st.integers(0, 4), actions, st.integers(0, 6)), min_size=1, max_size=25),
)
def test_random_interleavings_converge_to_the_masters_order(
    size: int, seed: int, ops: list[tuple[int, mx.Action, int]]
) -> None:
    c = CoreCluster(size, seed=seed, types=ALL_TYPES)
    c.setup(RID, INITIAL)
    for peer_index, action, deliveries in ops:
        c.dispatch(c.ids[peer_index % size], RID, action)
        for _ in range(deliveries):  # a few random deliveries, FIFO per link
            links = c.pending_links()
            if links:
                c.deliver(*c.rng.choice(links))
    c.run(shuffle=True)

    master_log = sorted(
        (m for src, dst, m in c.delivered if isinstance(m, rm.Applied) and src == dst == c.master_id),
        key=lambda m: m.version,
    )
    assert [m.version for m in master_log] == list(range(1, len(ops) + 1))  # each action exactly once
    expected = replay(Counter, freeze(INITIAL), [m.action for m in master_log])
    assert c.checksums(RID) == {checksum(expected)}
    for p in c.ids:
        assert c.view(p, RID) == expected  # nothing pending, nothing predicted wrongly
        assert c.clients[p].pending(Rid(RID)) == []
    assert c.of_type(fx.ResyncStarted) == []
    per_author = {p: sum(1 for i, _, _ in ops if c.ids[i % size] == p) for p in c.ids}
    assert {p: sum(1 for m in master_log if m.author == p) for p in c.ids} == per_author
