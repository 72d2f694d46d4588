"""examples/liars_dice.py on the real stack: the master's process SIGKILLed mid-round and started
again with the same identity; the round ends within ``reveal_timeout`` + 1 s and none is stuck.
Run with ``-s`` to print the figures; ``python benchmarks/liars_dice_failover.py --runs 20`` repeats it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from movex_p2p.testing.liars_dice_bed import BOUND, HONEST, LOADED, dice_run, loaded_run
from movex_p2p.testing.netns import open_namespace

pytestmark = pytest.mark.netns


@pytest.mark.timeout(300)
async def test_liars_dice_master_killed_mid_round_and_back_with_its_identity(tmp_path: Path) -> None:
    async with open_namespace() as ns:
        run = await dice_run(ns, tmp_path)
    times = ", ".join(f"{r}: {t:.2f}" for r, t in sorted(run.settle_times.items()))
    print("\n" + "\n".join(line for line in run.lines if line.startswith(("round", "winner", "*"))))
    print(
        f"\nmaster {run.killed} killed at round {run.kill_round}; winner {run.winner}; "
        f"seconds from call to settle per round {{{times}}} (the kill round: {run.seen_call_to_settle:.2f} s "
        f"on the spectator's screen, {run.kill_to_settle:.2f} s after the kill); game {run.elapsed:.1f} s; "
        f"aiortc shutdown tracebacks in {run.aiortc_noise or 'none'}"
    )
    assert not run.problems, run.problems
    assert not run.stuck, run.stuck
    assert run.winner
    assert run.kill_round_lost, "the killed master's roll should be lost (on_unrevealed) at its round's reveal"
    assert run.kill_round_time <= BOUND, run.settle_times
    assert run.seen_call_to_settle <= BOUND, run.seen_call_to_settle
    assert max(run.settle_times.values()) <= BOUND, run.settle_times


CAUGHT = {
    "reveal": re.compile(r"^! dropped: Revealed: an opening its author \S+ never signed"),  # the verify stage
    "draw": re.compile(r"^! forked: "),  # a forged draw: the master is distrusted and voted out
    "omit": re.compile(r"^! forked: "),  # players that answered named missing (or the master itself): refused
}
"""The diagnostic each honest peer prints when it refuses the attack's forgery."""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("attack", ["reveal", "draw", "omit"])
async def test_liars_dice_master_running_modified_code_learns_no_die_and_changes_none(
    tmp_path: Path, attack: str
) -> None:
    """The first master runs modified code (``movex_p2p.testing.loaded_dice --load``): it records every
    frame it gets, and rewrites what it sends: ``reveal``, every opening of its reveal shows sixes
    (its own too) and names another beacon; ``draw``, every draw carries a forged element; ``omit``,
    every draw leaves out all contributions but one. Every process records its frames; round 1 is
    played through its reveal. The honest authors' secrets (the nonces of their sealed halves: with
    the beacon they give the dice) are in none of the bytes the master got before the call, though
    the same search finds each of them in what some peer got afterwards; every honest peer shows
    each player's dice as that player saw them at its confirmation, or lost, and reports the attack."""
    async with open_namespace() as ns:
        run = await loaded_run(ns, tmp_path, attack)
    print(
        f"\n{attack}: {run.elapsed:.1f} s; masters seen {run.masters}; tampered {run.tampered}; rolled {run.rolled} "
        f"(the master's own {run.own}); "
        f"reveals {run.reveals}; lost {run.lost}; nonces {sum(map(len, run.nonces.values()))} "
        f"(found in received bytes: {run.nonces_seen}); diagnostics {run.diagnostics}"
    )
    assert not run.problems, run.problems
    assert all(run.nonces.values()), run.nonces  # every honest author opened its half
    assert not run.leaked, run.leaked  # no honest secret reached the master before the call
    assert not run.opened_early, run.opened_early
    assert run.nonces_seen == sum(map(len, run.nonces.values()))  # ... though the search finds them where they went
    assert run.tampered > 0  # the modified code did rewrite what it sent
    assert set(run.reveals) == set(HONEST)
    for peer, shown in run.reveals.items():  # no die changed: shown as rolled, or lost (never other dice)
        for author in HONEST:
            if author in run.rolled:
                assert shown.get(author, run.rolled[author]) == run.rolled[author], (peer, author, shown)
                assert author in shown or author in run.lost[peer], (peer, author)
            else:
                assert author not in shown, (peer, author, shown)  # no dice at its confirmation: none later
                assert author in run.lost[peer], (peer, author)
    for peer, shown in run.reveals.items():  # the master's own roll: not loaded either
        assert LOADED not in shown or shown[LOADED] == run.own, (peer, shown, run.own)
    refused = CAUGHT[attack]
    caught = {peer for peer, lines in run.diagnostics.items() if any(refused.search(line) for line in lines)}
    assert caught == set(HONEST), run.diagnostics  # every honest peer refused the forgery
