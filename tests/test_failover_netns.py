"""The master SIGKILLed (or leaving) while every peer dispatches, on the real stack in a namespace."""

from __future__ import annotations

import pytest

from movex_p2p.testing.failover_bed import failover_run
from movex_p2p.testing.netns import open_namespace, require_netns

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("mode", ["kill", "leave"])
async def test_master_lost_while_all_dispatch_loses_and_doubles_nothing(mode: str) -> None:
    require_netns()
    async with open_namespace() as ns:
        result = await failover_run(ns, 3, mode=mode)
    assert not result.problems, "\n".join(result.problems)  # a str: pytest shows it whole
    assert result.lost == 0
    assert result.doubled == 0
    assert result.checksums == 1
    assert result.pause < 10  # speed targets live in benchmarks/failover.py; this only bounds a hang
