"""Acks under ``majority``: an ack the master's commit never counted goes again (resource/acks.py)."""

from __future__ import annotations

from movex_p2p.resource.acks import ACK_AGAIN, Acks


def test_an_ack_goes_once_per_new_index_and_again_only_while_the_commit_stays_below_it() -> None:
    acks = Acks()
    assert acks.due(committed=0) is None  # nothing acked: nothing to repeat
    assert acks.take(index=5, committed=0, now=1.0) == 5
    assert acks.take(index=5, committed=0, now=1.1) is None  # sent just now
    assert acks.due(committed=0) == 1.0 + ACK_AGAIN
    assert acks.take(index=5, committed=0, now=1.0 + ACK_AGAIN) == 5  # lost? it goes again
    assert acks.take(index=7, committed=0, now=1.6) == 7  # a newer index goes at once
    assert acks.take(index=7, committed=7, now=9.0) is None  # counted: never again
    assert acks.due(committed=7) is None
    acks.reset()  # a new master
    assert acks.take(index=7, committed=7, now=9.1) == 7
