"""Private network namespaces for the tests and benchmarks that use real mDNS and WebRTC.

Nothing here opens a socket in the calling process. Every namespace gets the same setup
(:data:`SETUP`: ``unshare -rn``, lo up with multicast, plus 127.0.0.2/8 since aioice ignores
127.0.0.1). :class:`Namespace` keeps one alive and runs peer processes inside it with
``nsenter`` (they report JSON lines on stdout); :func:`reexec_in_namespace` runs a whole
benchmark script again inside a fresh one.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import typing
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import anyio
from anyio.abc import Process, TaskGroup
from anyio.streams.text import TextReceiveStream

SRC = Path(__file__).resolve().parents[2]
"""The directory that holds the ``movex_p2p`` package the beds run (put first on the peers' path)."""
ROOT = SRC.parent
"""The checkout the beds run from (its ``examples/`` and ``benchmarks/`` scripts; the peers' working directory)."""
ADDRESS = "127.0.0.2"
SETUP = f"ip link set lo up multicast on && ip addr add {ADDRESS}/8 dev lo"
"""Shell commands that make a fresh namespace usable: lo up with multicast, a host address aioice accepts."""

Event = dict[str, Any]
WITHOUT_FCNTL = [
    "-c",
    "import runpy, sys\n"
    "if 'fcntl' in sys.modules: raise SystemExit('fcntl was imported before this wrapper ran')\n"
    "sys.modules['fcntl'] = None  # every later import of it fails, as on Windows\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)",
]
"""``python WITHOUT_FCNTL MODULE ARGS...`` runs MODULE with ``fcntl`` unavailable: the whole stack
(standard library, aiortc, zeroconf, movex_p2p) imported and run without it."""
PEER = ["-X", "dev", "-m", "movex_p2p.testing.peer"]
"""``python PEER ROLE ...`` runs the peer program (:mod:`movex_p2p.testing.peer`), in development mode."""
B = TypeVar("B", bound="ProcessBed")


@functools.cache
def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (probed once), or None."""
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    try:
        probe = subprocess.run(
            ["unshare", "-rn", "sh", "-c", SETUP], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -rn failed: {exc!r}"
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    return None


def cannot_run() -> str | None:
    """For a benchmark's main: the line to print when namespaces cannot be made here (None: they can)."""
    reason = unavailable_reason()
    return None if reason is None else f"cannot run: network namespaces unavailable ({reason})"


def require_netns() -> None:
    """Skip the calling test with a clear reason where namespaces cannot be made."""
    reason = unavailable_reason()
    if reason is not None:
        import pytest  # only tests skip; benchmarks import this module too

        pytest.skip(f"network namespaces unavailable: {reason}")


def reexec_in_namespace(flag: str) -> typing.NoReturn:
    """Run this script again inside a fresh private namespace, with ``flag=1`` in its environment."""
    command = f'{SETUP} && exec env {flag}=1 "$0" "$@"'
    os.execvp("unshare", ["unshare", "-rn", "sh", "-c", command, sys.executable, *sys.argv])


def example(name: str) -> ModuleType:
    """The checkout's ``examples/<name>.py``, imported by its path (the examples are scripts, not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load examples/{name}.py from {ROOT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a crash in native code (aiortc's, OpenSSL's) leaves its stack on stderr
    return env


class PeerProcess:
    """One process in the namespace; its stdout JSON lines are collected as events."""

    def __init__(self, name: str, process: Process, stderr_path: Path) -> None:
        self.name = name
        self.process = process
        self.stderr_path = stderr_path
        self.events: list[Event] = []
        self._changed = anyio.Event()

    async def _collect(self) -> None:
        assert self.process.stdout is not None
        buffer = ""
        async for chunk in TextReceiveStream(self.process.stdout):
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in lines:
                if line.strip():
                    try:
                        self.events.append(json.loads(line))
                    except json.JSONDecodeError:
                        self.events.append({"ev": "garbage", "line": line})
            self._changed.set()
            self._changed = anyio.Event()
        self.events.append({"ev": "exit"})
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Event], bool], *, within: float = 10.0) -> Event:
        """The first event (seen so far or arriving within ``within``) matching ``predicate``."""
        try:
            with anyio.fail_after(within):
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    if any(e["ev"] == "exit" for e in self.events):
                        tail = "\n".join(json.dumps(e, ensure_ascii=False) for e in self.events[-20:])
                        raise AssertionError(
                            f"{self.name} exited (code {self.process.returncode}):\n{self.stderr()}\n"
                            f"its last lines:\n{tail}"
                        )
                    await self._changed.wait()
        except TimeoutError:
            tail = "\n".join(json.dumps(e, ensure_ascii=False) for e in self.events[-20:])
            raise TimeoutError(
                f"{self.name}: nothing it printed matched within {within} s; its last lines:\n{tail}"
            ) from None

    async def wait_event(self, ev: str, *, within: float = 10.0, **fields: Any) -> Event:
        return await self.wait_for(
            lambda e: e["ev"] == ev and all(e.get(k) == v for k, v in fields.items()), within=within
        )

    async def wait_peers(self, peers: set[str], *, within: float = 10.0) -> float:
        """Wait until ``up`` was seen for each of ``peers``; return the time of the last one."""
        last = 0.0
        for peer in sorted(peers):
            last = max(last, (await self.wait_event("up", peer=peer, within=within))["t"])
        return last

    def of(self, ev: str) -> list[Event]:
        return [e for e in self.events if e["ev"] == ev]

    async def command(self, cmd: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise AssertionError(f"{self.name} exited before {cmd!r}:\n{self.stderr()}") from None

    async def command_raw(self, line: str) -> None:
        """Type ``line`` (and Enter) into the process, as a user at a terminal would."""
        assert self.process.stdin is not None
        await self.process.stdin.send((line + "\n").encode())

    def kill(self) -> None:
        try:
            self.process.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text()[-4000:]
        except OSError:
            return ""


class ProcessBed:
    """Runs peer processes and owns them: every one is killed and reaped when the bed closes."""

    def __init__(self, tg: TaskGroup, tmp: Path) -> None:
        self._tg = tg
        self._tmp = tmp
        self.processes: list[PeerProcess] = []

    def argv(self, args: Sequence[str]) -> list[str]:
        """The command line that runs ``python args...`` in this bed."""
        raise NotImplementedError

    async def spawn(self, args: Sequence[str], *, name: str) -> PeerProcess:
        """Run ``python args...`` in the bed; its stdout JSON lines become events."""
        stderr_path = self._tmp / f"{name}-{len(self.processes)}.err"
        with stderr_path.open("wb") as stderr:
            process = await anyio.open_process(self.argv(args), stderr=stderr, cwd=ROOT, env=child_env())
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
                pass  # it is already on its way out
        with anyio.fail_after(within):
            await peer.process.wait()

    async def leave_all(self, peers: Sequence[PeerProcess], *, within: float = 10.0) -> None:
        """:meth:`leave` for each of ``peers``, all at once (each must be gone within ``within`` s)."""
        async with anyio.create_task_group() as tg:
            for peer in peers:
                tg.start_soon(functools.partial(self.leave, peer, within=within))


@asynccontextmanager
async def running(make: Callable[[TaskGroup, Path], B]) -> AsyncIterator[B]:
    """Open a bed built by ``make``; on exit kill and reap every process it started."""
    with tempfile.TemporaryDirectory(prefix="movex-bed-") as tmp:
        processes: list[PeerProcess] = []
        try:
            async with anyio.create_task_group() as tg:
                bed = make(tg, Path(tmp))
                processes = bed.processes
                try:
                    yield bed
                finally:
                    with anyio.CancelScope(shield=True):
                        await _kill_all(processes)
        finally:
            with anyio.CancelScope(shield=True):
                for peer in processes:
                    await peer.process.aclose()


class Namespace(ProcessBed):
    """One live namespace; ``spawn`` runs a process in it."""

    def __init__(self, holder: Process, tg: TaskGroup, tmp: Path) -> None:
        super().__init__(tg, tmp)
        self._holder = holder

    def argv(self, args: Sequence[str]) -> list[str]:
        return ["nsenter", "--preserve-credentials", "-U", "-n", "-t", str(self._holder.pid), sys.executable, *args]

    async def spawn_peer(self, peer_id: str, *extra: str) -> PeerProcess:
        """A ``link`` peer (:mod:`movex_p2p.testing.peer`) named ``peer_id``; waits until it reports ``ready``."""
        peer = await self.spawn([*PEER, "link", "--name", peer_id, *extra], name=peer_id)
        await peer.wait_event("ready", within=20)
        return peer


@asynccontextmanager
async def open_namespace() -> AsyncIterator[Namespace]:
    """A fresh namespace for one test; every process in it is killed on exit."""
    require_netns()
    holder = await anyio.open_process(
        ["unshare", "-rn", "sh", "-c", f"{SETUP} && echo ready && exec sleep 3600"],
        stderr=subprocess.DEVNULL,
    )
    try:
        assert holder.stdout is not None
        with anyio.fail_after(10):
            line = await holder.stdout.receive()
        if b"ready" not in line:
            import pytest

            pytest.skip(f"namespace setup failed: {line!r}")
        async with running(lambda tg, tmp: Namespace(holder, tg, tmp)) as namespace:
            yield namespace
    finally:
        with anyio.CancelScope(shield=True):
            holder.kill()
            await holder.wait()
            await holder.aclose()


async def _kill_all(processes: list[PeerProcess]) -> None:
    for peer in processes:
        if peer.process.returncode is None:
            peer.kill()
    for peer in processes:
        await peer.process.wait()


async def until(
    processes: Sequence[PeerProcess],
    condition: Callable[[], bool],
    what: str,
    *,
    within: float,
    describe: Callable[[], str] | None = None,
) -> None:
    """Wait until ``condition`` (read from what ``processes`` reported) holds: checked again each time
    one of them reports more. AssertionError if it does not within ``within`` s, or one exits first;
    ``describe`` says what the processes reported instead (added to the timeout's message)."""
    try:
        with anyio.fail_after(within):
            while not condition():
                exited = [p for p in processes if any(e["ev"] == "exit" for e in p.events)]
                if exited:
                    raise AssertionError(f"{exited[0].name} exited before {what}:\n{exited[0].stderr()}")
                changed = [p._changed for p in processes]  # taken with the check: nothing reported in between
                async with anyio.create_task_group() as tg:
                    for event in changed:
                        tg.start_soon(_set_then_cancel, event, tg.cancel_scope)
    except TimeoutError:
        seen = f"; instead: {describe()}" if describe is not None else ""
        raise AssertionError(f"not within {within} s: {what}{seen}") from None


async def _set_then_cancel(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def no_python_noise(peer: PeerProcess) -> None:
    """Assert the peer's stderr holds no traceback or warning (it runs with -X dev)."""
    text = peer.stderr()
    for marker in ("Traceback", "Warning:", "was never awaited", "Task was destroyed"):
        assert marker not in text, f"{peer.name} stderr:\n{text}"
