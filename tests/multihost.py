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
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from netns import ROOT, PeerProcess, _kill_all, child_env

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


class Hosts:
    """Hosts on one bridge; ``spawn`` runs ``python args...`` on the next host in turn."""

    def __init__(self, names: list[str], tg: anyio.abc.TaskGroup, tmp: Path) -> None:
        self.names = names
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(len(names))]
        self._tg = tg
        self._tmp = tmp
        self._turn = itertools.cycle(range(len(names)))
        self.processes: list[PeerProcess] = []

    async def spawn(self, args: Sequence[str], *, name: str, host: int | None = None) -> PeerProcess:
        """Run a peer process on ``host`` (default: the next one); its --iface is that host's address."""
        index = next(self._turn) if host is None else host
        stderr_path = self._tmp / f"{name}-{len(self.processes)}.err"
        with stderr_path.open("wb") as stderr:
            process = await anyio.open_process(
                ["ip", "netns", "exec", self.names[index], sys.executable, *args, "--iface", self.addresses[index]],
                stderr=stderr,
                cwd=ROOT,
                env=child_env(),
            )
        peer = PeerProcess(name, process, stderr_path)
        self.processes.append(peer)
        self._tg.start_soon(peer._collect)
        return peer

    async def leave(self, peer: PeerProcess, *, within: float = 10.0) -> None:
        """Ask ``peer`` to leave gracefully and wait for it to exit."""
        if peer.process.returncode is None:
            try:
                await peer.command("leave")
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
        with anyio.fail_after(within):
            await peer.process.wait()


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
    tag = uuid.uuid4().hex[:6]
    namespaces = _build(tag, count)
    try:
        with tempfile.TemporaryDirectory(prefix="movex-hosts-") as tmp:
            processes: list[PeerProcess] = []
            try:
                async with anyio.create_task_group() as tg:
                    hosts = Hosts(namespaces[1:], tg, Path(tmp))
                    processes = hosts.processes
                    try:
                        yield hosts
                    finally:
                        with anyio.CancelScope(shield=True):
                            await _kill_all(processes)
            finally:
                with anyio.CancelScope(shield=True):
                    for peer in processes:
                        await peer.process.aclose()
    finally:
        _teardown(namespaces)
