"""A room on a lossy LAN: 4 peer processes on 4 namespace hosts, nftables dropping packets (needs root).

Loss P here means P % of the packets into and out of every host are dropped (movex_p2p.testing.multihost),
so about 2P % of the packets between two hosts are lost. Speed targets live in benchmarks/wifi.py;
these tests check what must hold at every loss: nothing lost or doubled, one master, one checksum.
"""

from __future__ import annotations

import anyio
import pytest

from movex_p2p.testing.multihost import Hosts, open_hosts
from movex_p2p.testing.netns import PeerProcess
from movex_p2p.testing.wifi_bed import Play, SteadyResult, cut_and_heal, failover_at_loss, play_in_turn, startup

pytestmark = pytest.mark.netns

LOSSES = [0, 2, 5, 10]


async def blackouts(hosts: Hosts, _: list[PeerProcess]) -> None:
    await hosts.bursts(period=2.0, blackout=0.3, seed=1)


async def cut(hosts: Hosts, procs: list[PeerProcess]) -> None:
    """Host 2 cut off until each side declared the other dead and its peer played alone as master of
    a room of its own; healed, it rejoins the room under one master and plays on in it."""
    for p in procs:  # everyone played before the cut
        await p.wait_event("term_confirm", within=10)
    await cut_and_heal(hosts, procs, procs[2])


PLAYS = {
    **{f"{loss} %": Play(loss=loss, seconds=3.0) for loss in LOSSES},
    "blackouts": Play(loss=2, seconds=6.0, during=blackouts),
    "cut": Play(loss=0, seconds=None, during=cut),
}
"""One room of 4 plays each of these in turn, stopped and reported after each (it starts at 0 %:
starting at a loss is the startup and failover tests' below)."""


@pytest.fixture(scope="module")
def room() -> dict[str, SteadyResult]:
    """What the room did in each play (played once, by the first test that asks)."""

    async def play() -> dict[str, SteadyResult]:
        async with open_hosts(4) as hosts:
            return dict(zip(PLAYS, await play_in_turn(hosts, 4, list(PLAYS.values())), strict=True))

    return anyio.run(play)


@pytest.mark.timeout(300)  # the first test to ask for the room plays all of it
@pytest.mark.parametrize("loss", LOSSES)
def test_steady_play_at_loss_keeps_one_master_and_loses_nothing(room: dict[str, SteadyResult], loss: int) -> None:
    result = room[f"{loss} %"]
    assert not result.problems, "\n".join(result.problems)  # a str: pytest shows it whole
    assert (result.lost, result.doubled) == (0, 0)
    assert result.confirmed > 0
    if loss <= 5:
        assert (result.master_changes, result.declared_dead) == (0, 0)


@pytest.mark.timeout(300)
def test_play_through_blackouts_loses_and_doubles_nothing(room: dict[str, SteadyResult]) -> None:
    result = room["blackouts"]
    assert not result.problems, "\n".join(result.problems)  # a str: pytest shows it whole
    assert (result.lost, result.doubled) == (0, 0)


@pytest.mark.timeout(300)
def test_a_host_cut_off_rejoins_and_nothing_is_lost_or_doubled(room: dict[str, SteadyResult]) -> None:
    result = room["cut"]
    assert not result.problems, "\n".join(result.problems)  # a str: pytest shows it whole
    assert (result.lost, result.doubled) == (0, 0)
    assert result.declared_dead > 0  # the cut was seen


@pytest.mark.parametrize("loss", [2, 5, 10])
async def test_master_killed_at_loss_loses_and_doubles_nothing(loss: int) -> None:
    async with open_hosts(4) as hosts:
        result = await failover_at_loss(hosts, 4, loss)
    assert not result.problems, "\n".join(result.problems)  # a str: pytest shows it whole
    assert (result.lost, result.doubled, result.checksums) == (0, 0, 1)
    assert result.pause < 10  # the speed targets live in benchmarks/wifi.py; this bounds a hang


async def test_peers_started_together_at_10_percent_loss_agree_on_one_master() -> None:
    async with open_hosts(4) as hosts:
        hosts.set_loss(10)
        result = await startup(hosts, 4)
    # No split room: every peer is ready under the same master (startup raises otherwise), no
    # two peers were master in one term, and a master gave way only to a newer term's master.
    # Rarely two candidacies of one round cross and the first winner steps down a few ms later
    # for the second: a second master, never two in one term. How long two were master at once
    # is a speed figure, measured by benchmarks/wifi.py ("two_masters_at_once_max_s"), not here.
    assert (result.shared_terms, result.gave_way_back) == (0, 0), result
    assert result.masters_seen <= 2, result
