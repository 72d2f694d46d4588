"""Startup merge on the real stack (issue 16, item 3): a host plays alone, then three peers join at once.

Before, one run in 14 elected a joiner that recovered without the host's report: the host's next
action failed ResourceNotFound, the next ones "join first". Now a master pulls a resource it does
not hold whenever it is reported, and actions on it wait for it (``tests/test_stranded.py`` has the
seeded core test). ``python benchmarks/wifi.py --only merge --runs 20`` measures the rate.
"""

from __future__ import annotations

import pytest

from movex_p2p.testing.multihost import open_hosts
from movex_p2p.testing.wifi_bed import startup_merge

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("run", range(2))
async def test_a_host_that_played_alone_keeps_every_action_when_three_join_at_once(run: int) -> None:
    async with open_hosts(4) as hosts:
        result = await startup_merge(hosts, run=run)
    assert result.rejected == 0, result.errors
    assert result.confirmed > 0
    assert (result.lost, result.doubled, result.checksums, result.masters) == (0, 0, 1, 1)
