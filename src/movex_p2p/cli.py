"""The ``movex-p2p`` command: ``demo``, ``join``, ``inspect``, ``rooms`` and ``room-code``.

``demo`` runs several peers on this machine, kills the master midway and checks that every
surviving peer ends with the same state and that no confirmed action was lost or doubled.
By default the peers are separate processes talking over the real LAN stack (mDNS + WebRTC)
inside a private network namespace (``unshare -rn``), so no packet ever leaves the machine;
``--local`` (or where namespaces are impossible) runs them in one process on an in-process
network instead.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

import anyio
from anyio.abc import Process, TaskGroup
from anyio.streams.text import TextReceiveStream

from . import (
    Action,
    AuthenticationFailed,
    DispatchHandle,
    IncompatibleType,
    MovexError,
    Peer,
    ResourceNotFound,
    ResourceType,
    TransportError,
)
from .election.machine import term_round
from .ids import Term
from .roomcode import DEFAULT_WORDS, room_code
from .transport.base import Transport
from .transport.memory import FaultyNetwork
from .transport.mesh import LanStatus

if TYPE_CHECKING:
    from .presence import RoomInfo
    from .transport.lan import LanTransport

NS_ADDRESS: Final = "127.0.0.2"
DEMO_ROOM: Final = "movex-demo"
TALLY_RID: Final = "tally:demo"
RATE: Final = 10.0  # actions per second per playing peer
REPORT_EVERY: Final = 0.2
CHAT_RID: Final = "chat:lobby"

# -- the demo game -----------------------------------------------------------------------------


def tally(state: Any, action: Action) -> Any:
    """A shared counter that also counts each player's bumps."""
    match action:
        case Action("bump", str(name)):
            by = dict(state["by"])
            by[name] = by.get(name, 0) + 1
            return {"count": state["count"] + 1, "by": by}
    return state


Tally = ResourceType("tally", tally, initial={"count": 0, "by": {}})


def chat(state: Any, action: Action) -> Any:
    """A counter plus the last 50 chat lines."""
    match action:
        case Action("bump"):
            return {**state, "count": state["count"] + 1}
        case Action("say", {"who": str(who), "text": str(text)}):
            return {**state, "messages": [*state["messages"], [who, text[:200]]][-50:]}
    return state


Chat = ResourceType("chat", chat, initial={"count": 0, "messages": []})

Status = dict[str, Any]


class Player:
    """One peer of the demo in this process: joins, plays on command, reports its status."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.name = peer.name
        self.phase = "joining"
        self.confirmed = 0
        self.failed = 0
        self.outstanding = 0
        self._playing = False
        self._res: Any = None

    def status(self) -> Status:
        peer = self.peer
        status: Status = {
            "name": self.name,
            "id": peer.id,
            "master": peer.master_id,
            "term": term_round(Term(peer.term)),
            "is_master": peer.is_master,
            "ready": peer.ready and self._res is not None,
            "peers": len(peer.peers),
            "phase": self.phase,
            "confirmed": self.confirmed,
            "failed": self.failed,
            "outstanding": self.outstanding,
        }
        if self._res is not None:
            state = self._res.confirmed
            status.update(
                version=self._res.version,
                checksum=self._res.checksum,
                count=state["count"],
                by=dict(state["by"]),
            )
        return status

    def command(self, cmd: str) -> None:
        if cmd == "play":
            self._playing, self.phase = True, "playing"
        elif cmd in ("pause", "stop"):
            self._playing, self.phase = False, "paused" if cmd == "pause" else "stopped"

    async def run(self, stop: anyio.Event) -> None:
        rid = await self.peer.create(Tally, id="demo")
        self._res = await self.peer.bind(rid)
        self.phase = "idle"
        async with anyio.create_task_group() as tg:
            next_at = anyio.current_time()
            while not stop.is_set():
                if self._playing:
                    self._bump(tg)
                next_at = max(next_at + 1 / RATE, anyio.current_time())
                with anyio.move_on_after(next_at - anyio.current_time()):
                    await stop.wait()
            tg.cancel_scope.cancel()

    def _bump(self, tg: TaskGroup) -> None:
        try:
            handle = self._res.dispatch(Action("bump", self.name))
        except MovexError:
            self.failed += 1
            return
        self.outstanding += 1
        tg.start_soon(self._settle, handle)

    async def _settle(self, handle: DispatchHandle) -> None:
        try:
            await handle
        except MovexError:
            self.failed += 1
        else:
            self.confirmed += 1
        finally:
            self.outstanding -= 1


class Member(Protocol):
    """A demo peer as the controller sees it (in-process or a child process)."""

    @property
    def name(self) -> str: ...

    @property
    def status(self) -> Status: ...

    @property
    def killed(self) -> bool: ...

    def command(self, cmd: str) -> None: ...

    def kill(self) -> None: ...


# -- the controller (shared by both modes) -----------------------------------------------------


@dataclass
class DemoLog:
    """What the dashboard shows besides the table."""

    mode: str
    started: float = field(default_factory=time.monotonic)
    phase: str = "joining"
    events: list[str] = field(default_factory=list)
    failover: float | None = None
    verdict: str | None = None
    ok: bool = False

    def note(self, text: str) -> None:
        self.events.append(f"[{time.monotonic() - self.started:5.1f}s] {text}")


def check_verdict(members: Sequence[Member]) -> tuple[bool, str]:
    """States equal, nothing lost: every count confirmed by any peer is in the final state, once."""
    survivors = [m for m in members if not m.killed]
    if not survivors:
        return False, "no surviving peer"
    problems: list[str] = []
    sums = {m.status.get("checksum") for m in survivors}
    if len(sums) != 1 or None in sums:
        problems.append(f"checksums differ: {sorted(str(s)[:8] for s in sums)}")
    state = survivors[0].status
    by: dict[str, int] = state.get("by", {})
    total = sum(m.status.get("confirmed", 0) for m in members)
    for m in members:
        confirmed = m.status.get("confirmed", 0)
        if by.get(m.name, 0) != confirmed:
            problems.append(f"{m.name} confirmed {confirmed} but the state counts {by.get(m.name, 0)}")
    problems.extend(
        f"{m.name}: {m.status.get('failed', 0)} failed, {m.status.get('outstanding', 0)} unsettled"
        for m in survivors
        if m.status.get("failed", 0) or m.status.get("outstanding", 0)
    )
    if state.get("count") != total:
        problems.append(f"counter {state.get('count')} != {total} confirmed actions")
    if problems:
        return False, "FAILED: " + "; ".join(problems)
    return True, (
        f"states equal, nothing lost: {len(survivors)} survivors share checksum {str(state['checksum'])[:12]}, "
        f"counter {state['count']} = {total} confirmed actions"
    )


async def wait_until(cond: Callable[[], bool], limit: float, *, step: float = 0.05) -> bool:
    """Poll ``cond`` until it holds or ``limit`` seconds passed (statuses come from other processes)."""
    with anyio.move_on_after(limit):
        while not cond():  # noqa: ASYNC110
            await anyio.sleep(step)
        return True
    return cond()


async def control(members: Sequence[Member], log: DemoLog, *, seconds: float, join_timeout: float) -> None:
    """Join, play, kill the master midway, stop, settle and judge."""

    def by_name(master: str | None) -> str:
        return next((m.name for m in members if m.status.get("id") == master), str(master))

    def joined() -> bool:
        masters = {m.status.get("master") for m in members}
        return all(m.status.get("ready") and m.status.get("peers") == len(members) - 1 for m in members) and (
            len(masters) == 1 and None not in masters
        )

    if not await wait_until(joined, join_timeout):
        log.verdict = f"FAILED: the {len(members)} peers did not form a room within {join_timeout:.0f}s"
        return
    master = by_name(members[0].status["master"])
    log.note(f"{len(members)} peers joined; master is {master} (election round {members[0].status['term']})")
    log.phase = "playing"
    for m in members:
        m.command("play")
    play_start = time.monotonic()
    await anyio.sleep(seconds / 2)

    victim = next((m for m in members if m.status.get("is_master")), None)
    if victim is None:
        log.verdict = "FAILED: no master to kill"
        return
    victim.command("pause")  # its confirmed count must be final before it dies (see docs/troubleshooting.md)
    await wait_until(lambda: victim.status.get("outstanding", 1) == 0, 2.0)
    await anyio.sleep(0.3)
    killed_id = victim.status.get("id")
    victim.kill()
    t_kill = time.monotonic()
    log.phase = "failover"
    log.note(f"killed the master {victim.name} (confirmed {victim.status.get('confirmed')} actions)")
    survivors = [m for m in members if not m.killed]

    def new_master() -> bool:
        masters = {m.status.get("master") for m in survivors}
        return len(masters) == 1 and None not in masters and killed_id not in masters

    if await wait_until(new_master, 15.0, step=0.01):
        log.failover = time.monotonic() - t_kill
        log.note(f"{by_name(survivors[0].status['master'])} took over after {log.failover * 1000:.0f} ms")
        log.phase = "playing"
    else:
        log.note("no new master within 15 s")
    await anyio.sleep(max(0.0, play_start + seconds - time.monotonic()))

    log.phase = "settling"
    for m in survivors:
        m.command("stop")

    def settled() -> bool:
        ok, _ = check_verdict(members)
        return ok and all(m.status.get("phase") == "stopped" for m in survivors)

    await wait_until(settled, 10.0)
    log.ok, log.verdict = check_verdict(members)
    log.phase = "done"


# -- the dashboard -----------------------------------------------------------------------------


def render(members: Sequence[Member], log: DemoLog, *, verdict: bool = True) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"movex-p2p demo — {log.mode}", expand=False)
    for col in ("peer", "role", "term", "ver", "checksum", "counter", "confirmed", "flying", "phase"):
        table.add_column(col, justify="left" if col in ("peer", "role", "checksum", "phase") else "right", no_wrap=True)
    for m in members:
        s = m.status
        role = "[red]killed[/]" if m.killed else ("[bold green]MASTER[/]" if s.get("is_master") else "client")
        table.add_row(
            m.name,
            role,
            str(s.get("term", "")),
            str(s.get("version", "")),
            str(s.get("checksum", ""))[:8],
            str(s.get("count", "")),
            str(s.get("confirmed", "")),
            str(s.get("outstanding", "")),
            s.get("phase", "") if not m.killed else "killed",
        )
    failover = "—" if log.failover is None else f"{log.failover * 1000:.0f} ms"
    head = Text(f"t={time.monotonic() - log.started:5.1f}s  phase: {log.phase}  failover: {failover}")
    parts: list[Any] = [head, table, *(Text(e) for e in log.events[-6:])]
    if verdict and log.verdict is not None:
        parts.append(Text("VERDICT: " + log.verdict, style="bold green" if log.ok else "bold red"))
    return Group(*parts)


async def run_dashboard(members: Sequence[Member], log: DemoLog, body: Awaitable[None]) -> int:
    """Show the live table while ``body`` runs; print the verdict; 0 if it holds."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 110))
    if console.is_terminal:
        with Live(render(members, log), console=console, refresh_per_second=8) as live:
            async with anyio.create_task_group() as tg:

                async def refresh() -> None:
                    while True:
                        live.update(render(members, log))
                        await anyio.sleep(0.125)

                tg.start_soon(refresh)
                await body
                tg.cancel_scope.cancel()
            live.update(render(members, log, verdict=False))
    else:
        await body
        console.print(render(members, log, verdict=False))
    style = "bold green" if log.ok else "bold red"
    console.print(f"VERDICT: {log.verdict}", style=style, soft_wrap=True, markup=False, highlight=False)
    return 0 if log.ok else 1


# -- in-process mode ---------------------------------------------------------------------------


class LocalMember:
    """A demo peer on a FaultyNetwork in this process."""

    def __init__(self, player: Player, network: FaultyNetwork, stop: anyio.Event) -> None:
        self.player = player
        self.name = player.name
        self.killed = False
        self._network = network
        self._stop = stop
        self._last: Status = {"name": self.name}

    @property
    def status(self) -> Status:
        if not self.killed:
            self._last = self.player.status()
        return self._last

    def command(self, cmd: str) -> None:
        self.player.command(cmd)

    def kill(self) -> None:
        self._last = self.player.status()
        self.killed = True
        self._network.kill(self.player.peer.id)
        self._stop.set()


async def demo_local(peers: int, seconds: float, *, note: str | None = None) -> int:
    network = FaultyNetwork(seed=7, detect_after=0.5)
    log = DemoLog(mode=f"{peers} in-process peers on a simulated network (--local)")
    if note:
        log.note(note)
    stops = [anyio.Event() for _ in range(peers)]
    players = [
        Player(Peer(room=DEMO_ROOM, types=[Tally], name=f"p{i + 1}", transport=network, seed=i)) for i in range(peers)
    ]
    members = [LocalMember(p, network, s) for p, s in zip(players, stops, strict=True)]

    async def run_player(player: Player, stop: anyio.Event) -> None:
        try:
            async with player.peer:
                await player.run(stop)
        except MovexError as exc:
            if not stop.is_set():
                log.note(f"{player.name} failed: {exc}")

    async def body() -> None:
        async with anyio.create_task_group() as tg:
            for player, stop in zip(players, stops, strict=True):
                tg.start_soon(run_player, player, stop)
            try:
                await control(members, log, seconds=seconds, join_timeout=15.0)
            finally:
                for stop in stops:
                    stop.set()

    return await run_dashboard(members, log, body())


# -- multi-process mode (inside a private network namespace) -----------------------------------


def only_loopback() -> bool:
    """True when this process sees no network interface but ``lo`` (a private namespace)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def namespace_problem() -> str | None:
    """Why the process demo cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"'{tool}' not found"
    try:
        import movex_p2p.transport.lan  # noqa: F401
    except Exception as exc:
        return f"the LAN transport is not importable: {exc!r}"
    try:
        probe = subprocess.run(
            ["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc!r}"
    if probe.returncode != 0:
        return f"cannot create a private network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


class ProcessMember:
    """A demo peer in a child process (the peer program's ``demo`` role, :mod:`movex_p2p.testing.peer`).

    Commands go to its stdin and events come from its stdout, JSON lines both ways.
    """

    def __init__(self, name: str, process: Process) -> None:
        self.name = name
        self.process = process
        self.status: Status = {"name": name}
        self.killed = False
        self._pending: list[str] = []

    def command(self, cmd: str) -> None:
        self._pending.append(cmd)

    def kill(self) -> None:
        self.killed = True
        self.process.kill()  # SIGKILL on POSIX

    async def pump_commands(self) -> None:
        assert self.process.stdin is not None
        while True:
            while self._pending and not self.killed:
                cmd = self._pending.pop(0)
                try:
                    await self.process.stdin.send((json.dumps({"cmd": cmd}) + "\n").encode())
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return
            await anyio.sleep(0.02)

    async def read_status(self) -> None:
        assert self.process.stdout is not None
        buffer = ""
        try:
            async for chunk in TextReceiveStream(self.process.stdout):
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    if not line.startswith("{") or self.killed:
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict) and event.pop("ev", None) == "status":
                        event.pop("t", None)
                        self.status = event
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass


def _setup_namespace() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up", "multicast", "on"], check=True)
    subprocess.run(["ip", "addr", "add", f"{NS_ADDRESS}/8", "dev", "lo"], check=True)


async def demo_namespace(peers: int, seconds: float) -> int:
    """Inside the namespace: spawn the peer processes and run the controller."""
    if not only_loopback():
        print("refusing to run: this process is not in a private network namespace", file=sys.stderr)
        return 2
    _setup_namespace()
    log = DemoLog(mode=f"{peers} peer processes, mDNS + WebRTC inside a private network namespace")
    logdir = tempfile.mkdtemp(prefix="movex-demo-")
    members: list[ProcessMember] = []
    files: list[IO[bytes]] = []
    try:
        for i in range(peers):
            name = f"p{i + 1}"
            err = open(os.path.join(logdir, f"{name}.log"), "wb")  # noqa: SIM115, ASYNC230
            files.append(err)
            process = await anyio.open_process(
                [sys.executable, "-m", "movex_p2p.testing.peer", "demo", "--name", name, "--seed", str(i)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
            members.append(ProcessMember(name, process))

        async def body() -> None:
            async with anyio.create_task_group() as tg:
                for m in members:
                    tg.start_soon(m.read_status)
                    tg.start_soon(m.pump_commands)
                try:
                    await control(members, log, seconds=seconds, join_timeout=30.0)
                finally:
                    for m in members:
                        m.command("leave")
                    await anyio.sleep(0.2)
                    with anyio.move_on_after(5):
                        for m in members:
                            await m.process.wait()
                    tg.cancel_scope.cancel()

        status = await run_dashboard(members, log, body())
        if status == 0:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            print(f"peer logs kept in {logdir}", flush=True)
        return status
    finally:
        for m in members:
            if m.process.returncode is None:
                m.process.kill()
            with anyio.move_on_after(2, shield=True):
                await m.process.wait()
            await m.process.aclose()
        for f in files:
            f.close()


def cmd_demo(args: argparse.Namespace) -> int:
    peers, seconds = args.peers, args.seconds
    if peers < 2:
        print("the demo needs at least 2 peers", file=sys.stderr)
        return 2
    if not args.local:
        problem = namespace_problem()
        if problem is None:
            argv = ["unshare", "-rn", sys.executable, "-m", "movex_p2p.cli", "_demo-ns"]
            argv += ["--peers", str(peers), "--seconds", str(seconds)]
            with subprocess.Popen(argv) as child:
                try:
                    return child.wait()
                except KeyboardInterrupt:  # Ctrl-C reached the whole group: let it clean up its peers
                    try:
                        child.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        child.kill()
                    raise
        note = f"process demo unavailable ({problem}): running in-process peers instead"
        print(note, flush=True)
        return anyio.run(functools.partial(demo_local, peers, seconds, note=note))
    return anyio.run(demo_local, peers, seconds)


# -- join and inspect --------------------------------------------------------------------------


class UsageError(Exception):
    """Something the user must fix (an unknown interface, a port in use): one line, exit code 2."""


class NothingFound(Exception):
    """The command ran but found nothing (an empty room): one line, exit code 1."""


def _lan(args: argparse.Namespace) -> LanTransport:
    """The LAN transport the flags ask for; UsageError naming the flag to change."""
    from .transport.interfaces import usable_interfaces
    from .transport.lan import LanTransport

    try:
        found = usable_interfaces(args.interface)
    except (ValueError, TransportError) as exc:
        raise UsageError(f"{exc}; choose one with --interface ADDRESS or --interface ADAPTER") from exc
    print(f"* interfaces: {', '.join(found)}", flush=True)
    return LanTransport(interfaces=args.interface, port=args.port, peers=args.peer)


def _start_failed(exc: TransportError, args: argparse.Namespace) -> UsageError:
    if "cannot listen" in str(exc):
        hint = "pick another --port, or leave it out for any free port" if args.port else "check --interface"
        return UsageError(f"{exc}; {hint}")
    if isinstance(exc, AuthenticationFailed):
        return UsageError(f"{exc} (--secret)")
    return UsageError(str(exc))


def lan_report(status: LanStatus, *, peer_flags: bool) -> list[str]:
    """What ``inspect`` prints about the network: interfaces, who was seen how, what was refused, hints."""
    lines = [
        f"interfaces: {', '.join(status.interfaces)}; signaling TCP port {status.port}",
        f"mDNS (UDP 5353): {'on' if status.mdns else 'unavailable'}; peers seen over it: "
        + (", ".join(status.seen) or "none"),
    ]
    if status.learnt:
        lines.append(f"peers learnt from other peers (peer exchange): {', '.join(status.learnt)}")
    lines.append(f"links open: {', '.join(status.linked) or 'none'}")
    lines.extend(f"--peer {address}: {state}" for address, state in status.addresses)
    if status.refused:
        lines.append("handshakes failed or refused: " + ", ".join(f"{why}: {n}" for why, n in status.refused))
    if status.mdns_refused:
        lines.append("mDNS responses dropped: " + ", ".join(f"{why}: {n}" for why, n in status.mdns_refused))
    lines.extend(f"hint: {hint}" for hint in lan_hints(status, peer_flags=peer_flags))
    return lines


def lan_hints(status: LanStatus, *, peer_flags: bool) -> list[str]:
    """Which network problem most likely bites, from what the endpoint saw (see docs/lan.md)."""
    hints = []
    refused = dict(status.refused)
    if refused.get("wrong secret"):
        hints.append("a handshake failed on the room secret: every member must use the same --secret")
    if not status.seen and not status.linked and not peer_flags:
        hints.append(
            "no member seen over mDNS: the network drops multicast (Tailscale and most VPNs, guest Wi-Fi, "
            "AP/client isolation) or a firewall blocks UDP 5353, or nobody is in this room. Ask a member for "
            "its address and port (they run join with --port N) and use --peer HOST:PORT"
        )
    unlinked = [peer for peer in status.seen if peer not in status.linked]
    if unlinked and not refused.get("wrong secret"):
        hints.append(
            f"seen over mDNS but no link: {', '.join(unlinked)}. A firewall may block the signaling TCP port "
            "or WebRTC's UDP ports (Windows: allow Python on private networks), or the addresses it announces "
            "are not reachable from here (choose the right one with --interface)"
        )
    if refused.get("unreachable or timed out") and not status.linked and peer_flags:
        hints.append(
            "a --peer address does not answer: check the address and port, that the peer runs with --port, "
            "and that its firewall allows that TCP port"
        )
    return hints


class Console:
    """Lines for the user while they type: on a terminal, an incoming line is printed above the
    line being typed, which is then drawn again (readline), so nothing overwrites what they type."""

    def __init__(self, prompt: str = "> ") -> None:
        self._lock = threading.Lock()
        self._readline: Any = None
        self.interactive = sys.stdin.isatty() and sys.stdout.isatty()
        if self.interactive:
            try:
                import readline  # not on Windows: there, lines print as they come
            except ImportError:
                self.interactive = False
            else:
                self._readline = readline
        self.prompt = prompt if self.interactive else ""

    def say(self, text: str) -> None:
        """Print ``text`` (from any thread) without breaking the line being typed."""
        with self._lock:
            if self._readline is None:
                print(text, flush=True)
                return
            typed = self._readline.get_line_buffer()
            sys.stdout.write(f"\r\x1b[K{text}\n{self.prompt}{typed}")
            sys.stdout.flush()

    def read(self) -> str | None:
        """The next line typed, or None at the end of input."""
        if self.interactive:
            try:
                return input(self.prompt)
            except EOFError:
                return None
        line = sys.stdin.readline()
        return line.rstrip("\n") if line else None


def cmd_join(args: argparse.Namespace) -> int:
    from .embed import start_peer

    transport = _lan(args)
    console = Console()
    args.secret, note = resolve_secret(args)
    if note is not None:
        console.say(note)
    console.say(f"joining room {args.room!r} on the LAN... (Enter: +1, text: chat, /who: members, /quit: leave)")
    with contextlib.ExitStack() as stack:
        try:
            peer = stack.enter_context(
                start_peer(room=args.room, types=[Chat, Tally], name=args.name, secret=args.secret, transport=transport)
            )
        except TransportError as exc:
            raise _start_failed(exc, args) from exc
        except TimeoutError as exc:
            raise UsageError(
                "no master after 30 s: every player may have left, or they run under Policy.MAJORITY "
                "without a majority; try `movex-p2p inspect`"
            ) from exc
        status = peer.run_in_loop(lambda: _endpoint_status(peer.peer))
        if status is not None and status.interfaces:
            console.say(f"* others can join with --peer {status.interfaces[0]}:{status.port}")
        try:
            res = peer.bind(peer.create(Chat, id="lobby"))
        except IncompatibleType as exc:
            raise UsageError(f"{exc}: this room runs another version of movex-p2p's chat") from exc
        except ResourceNotFound as exc:  # the master has no 'chat' type: a game's room
            raise UsageError(
                f"room {args.room!r} plays another game: its master has no resource type {Chat.name!r}; "
                f"use `movex-p2p inspect --room {args.room}` to see it"
            ) from exc
        except TimeoutError as exc:
            raise UsageError(
                f"the master did not answer within {peer.call_timeout:g} s; try `movex-p2p inspect`"
            ) from exc
        except TransportError as exc:
            raise _start_failed(exc, args) from exc

        def name_of(peer_id: str | None) -> str:
            member = peer.members.get(peer_id or "")
            return f"{member.name} ({peer_id})" if member is not None else str(peer_id)

        peer.on_master_changed(lambda master, term: console.say(f"* master is now {name_of(master)}"))
        peer.on_peer_joined(lambda info: console.say(f"* {info.name} joined" + _role_note(info.role)))
        peer.on_peer_left(lambda info, reason: console.say(f"* {info.name} {_LEFT[reason]}"))
        peer.on_diagnostic(lambda d: console.say(f"! {d.kind}: {d.reason}"))
        others = [info.name + _role_note(info.role) for info in peer.members.values() if info.id != peer.id]
        console.say(f"* you are {peer.name} ({peer.id}); in the room: {', '.join(others) or 'nobody else'}")
        console.say(f"* master {name_of(peer.master_id)}; counter {res.state['count']}")
        done = threading.Event()
        seen = [len(res.state["messages"]), res.state["count"]]

        def show() -> None:
            while not done.wait(0.1):
                peer.poll()  # runs the callbacks above, on this thread
                for state in res.poll():
                    messages = state["messages"]
                    for who, text in messages[min(seen[0], len(messages)) :]:
                        console.say(f"<{who}> {text}")
                    seen[0] = len(messages)
                    if state["count"] != seen[1]:
                        seen[1] = state["count"]
                        console.say(f"  counter = {state['count']}")

        printer = threading.Thread(target=show, name="movex-join-printer")
        printer.start()
        try:
            while (line := console.read()) is not None:
                text = line.strip()
                if text == "/quit":
                    break
                if text == "/who":
                    for info in peer.members.values():
                        console.say(f"  {info.name} ({info.id}){_role_note(info.role)}")
                elif text:
                    res.dispatch(Action("say", {"who": peer.name, "text": text}))
                else:
                    res.dispatch(Action("bump"))
        except KeyboardInterrupt:
            pass
        finally:
            done.set()
            printer.join()
    print("\nleft the room")
    return 0


_LEFT: Final = {"left": "left", "lost": "was lost (no goodbye)"}


def _role_note(role: str) -> str:
    return " (spectator)" if role == "spectator" else ""


def _endpoint_status(peer: Peer) -> LanStatus | None:
    """The LAN endpoint's status, if the peer runs on the LAN transport (call it on the network loop)."""
    endpoint = peer._endpoint
    status = None if endpoint is None else endpoint.status()
    return status if isinstance(status, LanStatus) else None


async def inspect_room(
    room: str,
    secret: str | None,
    transport: Transport,
    seconds: float,
    *,
    peer_flags: bool = False,
    full: bool = False,
) -> int:
    """Join as a spectator that holds every type opaquely, listen ``seconds``, print the room.

    Raises :class:`UsageError` when every member refused our secret, :class:`NothingFound` when
    no peer answered (after printing what the network showed).
    """
    peer = Peer(
        room=room, types=[], name="inspector", secret=secret, transport=transport, role="spectator", opaque=True
    )
    async with peer:
        deadline = anyio.current_time() + seconds
        refused: AuthenticationFailed | None = None
        with anyio.move_on_after(seconds):
            try:
                await peer.wait_ready()
            except AuthenticationFailed as exc:
                refused = exc
        if refused is None:
            await anyio.sleep(min(1.0, seconds / 2))  # let snapshots of existing resources arrive
        if not peer.peers:  # alone so far: listen for the whole time, so the report can tell why
            await anyio.sleep(max(0.0, deadline - anyio.current_time()))
        if refused is None and not peer.peers:
            refused = peer._refused_by_everyone()  # a handshake that failed while we listened
        for line in room_report(peer, full=full):
            print(line)
        status = _endpoint_status(peer)
        if status is not None:
            for line in lan_report(status, peer_flags=peer_flags):
                print(line, flush=True)
        answered = bool(peer.peers)
    if refused is not None:
        raise UsageError(f"{refused} (--secret)")
    if not answered:
        hints = " (see the hints above)" if status is not None else ""
        raise NothingFound(f"no peer answered in room {room!r} within {seconds:g} s{hints}")
    return 0


def room_report(peer: Peer, *, full: bool = False) -> list[str]:
    """What ``inspect`` prints about the room: members and roles, master, term, every resource's raw state."""
    members = sorted(peer.members.values(), key=lambda m: (m.id == peer.id, m.role, m.name))
    players = [m for m in members if m.role == "player"]
    master = peer.master_id
    lines = [f"room {peer.room!r}: {len(players)} player(s), seen by {peer.name} ({peer.id}, a spectator)"]
    if master is None:
        reason = "no player in the room" if not players else "an election is under way"
        lines.append(f"master: none ({reason})")
    else:
        lines.append(f"master: {peer.members[master].name if master in peer.members else '?'} ({master})")
    lines.append(f"term: {term_round(Term(peer.term))} ({peer.term})  ready: {peer.ready}")
    lines.append(f"members ({len(members)}):")
    for member in members:
        tags = [member.role, *(["master"] if member.id == master else []), *(["you"] if member.id == peer.id else [])]
        info = f"  info {_text(member.info, 120)}" if member.info else ""
        lines.append(f"  {member.name} ({member.id}) [{', '.join(tags)}]{info}")
    rids = sorted(peer.resources())
    lines.append(f"resources ({len(rids)}):")
    for rid in rids:
        res = peer.resource_info(rid)
        subscribers = ", ".join(sorted(peer.members[s].name if s in peer.members else s for s in res.subscribers))
        lines.append(f"  {rid}  v{res.version}  checksum {res.checksum[:16]}  subscribers: {subscribers or 'none'}")
        lines.append(f"    {_text(res.state, None if full else 400)}")
    return lines


def _text(value: Any, limit: int | None) -> str:
    """Any state as one line of JSON (bytes as their size), cut at ``limit`` characters."""
    text = json.dumps(value, default=lambda v: f"<{len(v)} bytes>" if isinstance(v, bytes) else repr(v))
    if limit is not None and len(text) > limit:
        return f"{text[:limit]}... ({len(text)} characters; --full shows all)"
    return text


def cmd_inspect(args: argparse.Namespace) -> int:
    transport = _lan(args)
    try:
        return anyio.run(
            functools.partial(inspect_room, peer_flags=bool(args.peer), full=args.full),
            args.room,
            args.secret,
            transport,
            args.seconds,
        )
    except TransportError as exc:
        raise _start_failed(exc, args) from exc


def room_lines(rooms: Sequence[RoomInfo]) -> list[str]:
    """What ``rooms`` prints: one line per room, then its lobby hints (unsigned) if any."""
    lines = []
    for room in rooms:
        watching = f", {room.spectators} watching" if room.spectators else ""
        names = f" ({', '.join(room.names)})" if room.names else ""
        lines.append(f"{room.room}: {room.players} player(s){names}{watching}")
        hints = [
            *([f"game {room.game}"] if room.game else []),
            *([f"max {room.max_players} players"] if room.max_players else []),
            *(["secret required"] if room.secret_required else []),
            "started" if room.started else "not started",
            *([f"types {room.version}"] if room.version else []),
            *([f"info {_text(room.info, 200)}"] if room.info else []),
        ]
        lines.append(f"  {', '.join(hints)}")
    return lines


def cmd_rooms(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .lobby import browse_rooms
    from .transport.interfaces import usable_interfaces

    if not args.wait >= 0:
        raise UsageError("--wait must be a number of seconds, 0 or more")
    try:
        usable_interfaces(args.interface)
        rooms = anyio.run(functools.partial(browse_rooms, args.interface, args.wait, game=args.game))
    except (ValueError, TransportError) as exc:
        raise UsageError(f"{exc}; choose one with --interface ADDRESS or --interface ADAPTER") from exc
    if args.json:
        print(json.dumps([asdict(room) for room in rooms]))
        return 0
    what = f"rooms of game {args.game!r}" if args.game else "rooms"
    print("\n".join(room_lines(rooms)) if rooms else f"no {what} answered within {args.wait:g} s")
    return 0


def _peer_address(text: str) -> str:
    from .transport.mesh import parse_peer_address

    try:
        return str(parse_peer_address(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port number (0 to 65535)")
    return int(text)


def _word_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 32:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of words (1 to 32)")
    return int(text)


NEW_SECRET: Final = object()
"""``join --secret`` without a value: make a new room code."""


def resolve_secret(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The secret ``join`` uses, and a line telling the user a new one (``--secret`` given alone)."""
    if args.secret is not NEW_SECRET:
        return args.secret, None
    code = room_code()
    return code, f"* new room secret: {code} (others join with --secret {code})"


def cmd_room_code(args: argparse.Namespace) -> int:
    print(room_code(args.words))
    return 0


def _network_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interface",
        action="append",
        default=None,
        metavar="ADDR|NAME",
        help="IPv4 address or adapter name (eth0, en0, Wi-Fi, a ZeroTier adapter) to use; repeatable "
        "(default: every non-loopback IPv4 interface)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=0,
        metavar="N",
        help="signaling TCP port to listen on (default: any free port); fix it so others can --peer you",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        type=_peer_address,
        metavar="HOST:PORT",
        help="join by address: a member's signaling address (repeatable), for networks where multicast "
        "does not pass (Tailscale, guest Wi-Fi)",
    )


# -- argparse ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="movex-p2p", description="Serverless multiplayer state sync for LAN games, with host migration."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run several peers on this machine, kill the master midway, check nothing was lost",
        description="Run several peers on this machine (separate processes in a private network namespace, "
        "so nothing reaches your LAN; in-process with --local), kill the master midway and check that every "
        "survivor ends with the same state and no confirmed action was lost or doubled. Exit 0 iff it holds.",
    )
    demo.add_argument("--peers", type=int, default=4, help="number of peers (default 4)")
    demo.add_argument("--seconds", type=float, default=30.0, help="how long they play (default 30)")
    demo.add_argument("--local", action="store_true", help="in-process peers on a simulated network")
    demo.set_defaults(func=cmd_demo)

    join = sub.add_parser(
        "join", help="join a room on the LAN: a shared counter and chat", description="Join a room on your LAN."
    )
    join.add_argument("--room", required=True, help="room name")
    join.add_argument("--name", default=None, help="your display name")
    join.add_argument(
        "--secret",
        nargs="?",
        const=NEW_SECRET,
        default=None,
        help="room secret (peers without it cannot join); --secret alone makes a new 4-word room code and "
        "prints it for the others",
    )
    _network_flags(join)
    join.set_defaults(func=cmd_join)

    inspect = sub.add_parser(
        "inspect",
        help="show a room: its members and roles, master, term and every resource's raw state",
        description="Join a room as a spectator (never master, not counted as a player) and print its "
        "members and roles, master, term and every resource's raw state, of any type.",
    )
    inspect.add_argument("--room", required=True, help="room name")
    inspect.add_argument("--secret", default=None, help="room secret")
    _network_flags(inspect)
    inspect.add_argument("--seconds", type=float, default=3.0, help="how long to listen (default 3)")
    inspect.add_argument("--full", action="store_true", help="print whole states (default: 400 characters each)")
    inspect.set_defaults(func=cmd_inspect)

    rooms = sub.add_parser(
        "rooms",
        help="list the rooms on the LAN (a lobby): players, game, whether it started",
        description="List the rooms whose peers answer over mDNS within --wait seconds, without joining any "
        "and without a secret. Games, versions, max players, started and info are hints the peers announce.",
    )
    rooms.add_argument("--wait", type=float, default=1.0, help="seconds to listen (default 1)")
    rooms.add_argument("--game", default=None, help="only rooms announcing this game")
    rooms.add_argument("--json", action="store_true", help="print the rooms as one JSON list")
    rooms.add_argument(
        "--interface", action="append", default=None, metavar="ADDR|NAME", help="as for join (repeatable)"
    )
    rooms.set_defaults(func=cmd_rooms)

    code = sub.add_parser(
        "room-code",
        help="print a new random room secret (4 common words: 44 bits)",
        description="Print a new room secret of random common English words from a list of 2048 (11 bits "
        "each), drawn with the operating system's randomness. Give it to every player (--secret).",
    )
    code.add_argument("--words", type=_word_count, default=DEFAULT_WORDS, help="how many words (default 4)")
    code.set_defaults(func=cmd_room_code)

    ns = sub.add_parser("_demo-ns")
    ns.add_argument("--peers", type=int, default=4)
    ns.add_argument("--seconds", type=float, default=30.0)
    ns.set_defaults(func=lambda a: anyio.run(demo_namespace, a.peers, a.seconds))

    # internal subcommands: callable, but not listed in --help
    sub._choices_actions = [a for a in sub._choices_actions if not a.dest.startswith("_")]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``movex-p2p`` entry point."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as exc:
        print(f"movex-p2p {args.command}: {exc}", file=sys.stderr)
        return 2
    except NothingFound as exc:
        print(f"movex-p2p {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
