"""The per-source mDNS budget (issue 19, S4) on a hand clock: what a flood gets in, what a peer keeps."""

from __future__ import annotations

from movex_p2p.transport.mdnsbudget import (
    MEMBER_BURST,
    OVER_MEMBERS,
    OVER_RECORDS,
    RECORD_BURST,
    RECORD_RATE,
    SHARED_SOURCE,
    TOO_MANY_MEMBERS,
    MdnsBudget,
)

FAKE = "127.0.0.66"
PEER = "127.0.0.2"


def new_member() -> tuple[int, int]:
    return (1, 0)


def test_a_flood_of_made_up_members_from_one_source_gets_a_bounded_number_in() -> None:
    """10,000 announcements (4 records each, a new member each) at 1,000 a second, then 10 s more."""
    budget = MdnsBudget()
    admitted = 0
    for i in range(10_000):
        if budget.admit(FAKE, records=4, now=i / 1000, members=new_member) is None:
            admitted += 1
    assert admitted == MEMBER_BURST  # the burst; the next one is earned after 10 s (0.1 a second)
    assert budget.refused[OVER_RECORDS] > 9_000
    assert budget.refused[OVER_MEMBERS] > 0
    assert sum(budget.refused.values()) == 10_000 - admitted
    assert budget.admit(FAKE, records=4, now=10.5, members=new_member) is None
    assert budget.admit(FAKE, records=4, now=10.6, members=new_member) is not None


def test_a_peer_on_another_address_is_admitted_during_the_flood() -> None:
    budget = MdnsBudget()
    for i in range(5_000):
        budget.admit(FAKE, records=4, now=i / 1000, members=new_member)
    # its announcement, three times, and its answers to queries
    for t in (5.0, 6.0, 8.0, 8.5, 9.0):
        assert budget.admit(PEER, records=5, now=t, members=new_member if t == 5.0 else lambda: (0, 1)) is None


def test_records_refill_at_the_rate_and_an_idle_source_gets_its_burst_back() -> None:
    budget = MdnsBudget()
    assert budget.admit(PEER, records=int(RECORD_BURST), now=0.0) is None
    dropped = budget.admit(PEER, records=5, now=0.0)
    assert dropped is not None
    assert dropped.reason == OVER_RECORDS
    assert dropped.first
    again = budget.admit(PEER, records=5, now=0.01)
    assert again is not None
    assert not again.first  # one warning per spell of drops
    assert budget.admit(PEER, records=5, now=5 / RECORD_RATE) is None
    assert budget.admit(PEER, records=int(RECORD_BURST), now=1000.0) is None


def test_members_are_only_counted_when_the_records_fit() -> None:
    budget = MdnsBudget()
    calls = 0

    def members() -> tuple[int, int]:
        nonlocal calls
        calls += 1
        return (1, 0)

    budget.admit(FAKE, records=int(RECORD_BURST) + 1, now=0.0, members=members)  # never fits
    assert calls == 0


def test_the_cache_holds_a_bounded_number_of_members_whatever_the_sources() -> None:
    """A spoofer with a fresh address for every announcement gets no further than the cap."""
    budget = MdnsBudget(members_kept=100)
    held = 0

    def one_new() -> tuple[int, int]:
        return (1, held)

    for i in range(1_000):
        if budget.admit(f"10.{i // 250}.{i % 250}.1", records=4, now=i / 1000, members=one_new) is None:
            held += 1
    assert held == 100
    assert budget.refused[TOO_MANY_MEMBERS] == 900
    # a member already held (a re-announcement, a goodbye) still goes through at the cap
    assert budget.admit(PEER, records=5, now=2.0, members=lambda: (0, held)) is None


def test_the_table_of_sources_is_bounded_and_forgets_the_least_recently_heard() -> None:
    budget = MdnsBudget(sources_kept=8)
    budget.admit(FAKE, records=int(RECORD_BURST), now=0.0)  # FAKE spent its budget
    for i in range(8):
        budget.admit(f"10.0.0.{i}", records=1, now=0.1)
    assert budget.sources == 8
    # FAKE, the least recently heard, was forgotten: it starts again with a full budget
    assert budget.admit(FAKE, records=int(RECORD_BURST), now=0.2) is None
    assert budget.sources == 8


def test_this_machine_s_own_unicast_answers_are_capped_but_not_budgeted_per_source() -> None:
    """Every zeroconf of one machine answers unicast questions from 127.0.0.1: in the tests, the made-up
    members' answers and the real peers' came from that one source, and the flood's budget dropped a real
    peer's answer (a join took 9.9 s once). No packet from the LAN carries it; the cap still holds."""
    budget = MdnsBudget(members_kept=300)
    held = 0

    def one_new() -> tuple[int, int]:
        return (1, held)

    for i in range(1_000):
        if budget.admit(SHARED_SOURCE, records=4, now=i / 1000, members=one_new) is None:
            held += 1
    assert held == 300
    assert budget.refused[TOO_MANY_MEMBERS] == 700
    assert budget.refused[OVER_RECORDS] == budget.refused[OVER_MEMBERS] == 0
