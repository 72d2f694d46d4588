"""Several "hosts" on one machine: network namespaces joined by veth pairs to a bridge (needs root).

Each host is a namespace with its own address (10.77.0.x/24 on eth0); a further namespace
holds the bridge, so nothing touches the root namespace's interfaces. Processes run in a host
with ``ip netns exec`` and report JSON lines like the single-namespace bed (tests/netns.py).
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from anyio.abc import TaskGroup

from netns import ProcessBed, running

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
    probe = f"mxprobe{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


class Hosts(ProcessBed):
    """Hosts on one bridge; ``spawn`` runs ``python args...`` on the next host in turn."""

    def __init__(self, names: list[str], tg: TaskGroup, tmp: Path) -> None:
        super().__init__(tg, tmp)
        self.names = names
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(len(names))]
        self._turn = itertools.cycle(range(len(names)))

    def argv(self, args: Sequence[str]) -> list[str]:
        """Run on the next host; the peer's --iface is that host's address."""
        host = next(self._turn)
        return ["ip", "netns", "exec", self.names[host], sys.executable, *args, "--iface", self.addresses[host]]


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
        pytest.skip(f"multi-host namespaces unavailable: {reason}")
    namespaces = _build(uuid.uuid4().hex[:6], count)
    try:
        async with running(lambda tg, tmp: Hosts(namespaces[1:], tg, tmp)) as hosts:
            yield hosts
    finally:
        _teardown(namespaces)
