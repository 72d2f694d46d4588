"""Several "hosts" on one machine: network namespaces joined by veth pairs to a bridge (needs root).

Each host is a namespace with its own address (10.77.0.x/24 on eth0); a further namespace
holds the bridge, so nothing touches the root namespace's interfaces. Processes run in a host
with ``ip netns exec`` and report JSON lines like the single-namespace bed (movex_p2p.testing.netns).

Faults (the kernels here have no netem): an nftables table ``bridge chaos`` in the bridge's
namespace drops frames on each host's bridge port, as a lossy radio link would (a host's own
``sendto`` never fails, unlike an output rule inside the host). :meth:`Hosts.set_loss` drops a
random ``percent`` of every frame out of AND into a host (so with loss P on every host, a
frame from one host to another crosses two rules: about 2P one way); :meth:`Hosts.cut` drops
everything until :meth:`Hosts.heal`; :meth:`Hosts.bursts` blacks a host out for ``blackout``
seconds every ``period`` seconds; :meth:`Hosts.drop_multicast` drops mDNS (UDP 5353). Each
change replaces the table atomically (``nft -f``); schedules that draw randomness take a seed.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from .netns import PeerProcess, ProcessBed, running

SUBNET = "10.77.0"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


@functools.cache
def unavailable_reason() -> str | None:
    """Why a multi-host bed cannot be made here (probed once), or None."""
    if shutil.which("ip") is None:
        return "ip (iproute2) not found"
    if os.geteuid() != 0:
        return "needs root for `ip netns add` (CI runs as root)"
    if shutil.which("nft") is None:
        return "nft (nftables) not found: apt-get install nftables (CI installs it)"
    probe = f"mxprobe{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass(slots=True)
class _Chaos:
    """What the bridge drops for one host now."""

    loss: int = 0
    cut: bool = False
    multicast: bool = False

    def rules(self, port: str) -> list[str]:
        """Rules of the bridge's forward chain: out of the host (iif) and into it (oif)."""
        match = []
        if self.cut:
            match.append("")
        if self.multicast:
            match.append("udp dport 5353 ")
        if self.loss:
            match.append(f"numgen random mod 100 < {self.loss} ")
        return [f"{way} {port} {m}drop" for m in match for way in ("iifname", "oifname")]


class Hosts(ProcessBed):
    """Hosts on one bridge; ``spawn`` runs ``python args...`` on the next host in turn."""

    def __init__(self, bridge: str, names: list[str], tg: TaskGroup, tmp: Path) -> None:
        super().__init__(tg, tmp)
        self.bridge = bridge
        self.names = names
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(len(names))]
        self._turn = itertools.cycle(range(len(names)))
        self._chaos = [_Chaos() for _ in names]
        self._next_host: int | None = None
        self._host_of: dict[PeerProcess, int] = {}

    def argv(self, args: Sequence[str]) -> list[str]:
        """Run on the host :meth:`spawn` chose; --iface is that host's address."""
        host = next(self._turn) if self._next_host is None else self._next_host
        self._next_host = None
        return ["ip", "netns", "exec", self.names[host], sys.executable, *args, "--iface", self.addresses[host]]

    async def spawn(self, args: Sequence[str], *, name: str) -> PeerProcess:
        """Run ``python args...`` on the next host in turn (or the one :meth:`spawn_on` chose)."""
        host = next(self._turn) if self._next_host is None else self._next_host
        self._next_host = host
        process = await super().spawn(args, name=name)
        self._host_of[process] = host
        return process

    async def spawn_on(self, host: int, args: Sequence[str], *, name: str) -> PeerProcess:
        """Run ``python args...`` on host number ``host``."""
        self._next_host = host
        return await self.spawn(args, name=name)

    def host_of(self, process: PeerProcess) -> int:
        """The number of the host ``process`` runs on."""
        return self._host_of[process]

    # -- faults --------------------------------------------------------------------------------

    def _hosts(self, host: int | None) -> list[int]:
        return list(range(len(self.names))) if host is None else [host]

    def _apply(self, host: int) -> None:
        # Dropped on the bridge, as a lossy radio would: a host's own sendto() never fails.
        rules = "".join(f"{rule}; " for i, chaos in enumerate(self._chaos) for rule in chaos.rules(f'"p{i}"'))
        script = (
            "table bridge chaos\ndelete table bridge chaos\n"
            "table bridge chaos {\n chain forward { type filter hook forward priority 0; policy accept; "
            f"{rules}}}\n}}\n"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", self.bridge, "nft", "-f", "-"],
            input=script,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft for host {host}: {done.stderr.strip()}")

    def set_loss(self, percent: int, *, host: int | None = None) -> None:
        """Drop ``percent`` % of the packets into and out of ``host`` (every host if None)."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be within 0..100")
        for i in self._hosts(host):
            self._chaos[i].loss = percent
            self._apply(i)

    def cut(self, host: int) -> None:
        """Drop every packet into and out of ``host`` (its links stay configured)."""
        self._chaos[host].cut = True
        self._apply(host)

    def heal(self, host: int | None = None) -> None:
        """Undo :meth:`cut` on ``host`` (every host if None)."""
        for i in self._hosts(host):
            self._chaos[i].cut = False
            self._apply(i)

    def drop_multicast(self, drop: bool = True, *, host: int | None = None) -> None:
        """Drop mDNS (UDP port 5353) into and out of ``host`` (every host if None)."""
        for i in self._hosts(host):
            self._chaos[i].multicast = drop
            self._apply(i)

    async def bursts(
        self, *, period: float = 3.0, blackout: float = 0.3, host: int | None = None, seed: int = 0
    ) -> None:
        """Until cancelled: every ``period`` s (+-20 %, seeded) black out ``host`` (each in turn if None)."""
        rng = random.Random(seed)
        targets = self._hosts(host)
        try:
            while True:
                await anyio.sleep(period * rng.uniform(0.8, 1.2))
                victim = rng.choice(targets)
                self.cut(victim)
                try:
                    await anyio.sleep(blackout)
                finally:
                    self.heal(victim)  # synchronous: a cancellation cannot cut it short
        finally:
            for i in targets:
                if self._chaos[i].cut:
                    self.heal(i)


def _build(tag: str, count: int) -> list[str]:
    bridge = f"mxbr{tag}"
    hosts = [f"mxh{tag}{i}" for i in range(count)]
    script = [f"netns add {bridge}", f"-n {bridge} link add br0 type bridge", f"-n {bridge} link set br0 up"]
    for i, host in enumerate(hosts):
        script += [
            f"netns add {host}",
            f"-n {host} link add eth0 type veth peer name p{i} netns {bridge}",
            f"-n {bridge} link set p{i} master br0",
            f"-n {bridge} link set p{i} up",
            f"-n {host} addr add {SUBNET}.{i + 1}/24 dev eth0",
            f"-n {host} link set eth0 up multicast on",
            f"-n {host} link set lo up",
        ]
    for line in script:
        done = _ip(*line.split())
        if done.returncode != 0:
            _teardown([bridge, *hosts])
            raise RuntimeError(f"ip {line}: {done.stderr.strip()}")
    return [bridge, *hosts]


def _teardown(namespaces: list[str]) -> None:
    for namespace in namespaces:
        _ip("netns", "del", namespace)


@asynccontextmanager
async def open_hosts(count: int) -> AsyncIterator[Hosts]:
    """``count`` hosts on a private bridge; every process and namespace is removed on exit."""
    reason = unavailable_reason()
    if reason is not None:
        import pytest  # only tests skip; benchmarks check unavailable_reason() first

        pytest.skip(f"multi-host namespaces unavailable: {reason}")
    namespaces = _build(uuid.uuid4().hex[:6], count)
    try:
        async with running(lambda tg, tmp: Hosts(namespaces[0], namespaces[1:], tg, tmp)) as hosts:
            yield hosts
    finally:
        _teardown(namespaces)
