"""Windows and macOS, proven on Linux: no ``fcntl``, ``sys.platform`` reported as win32/darwin, stubbed adapters.

Each check runs in a fresh interpreter that blocks ``fcntl`` (``sys.modules["fcntl"] = None``,
so any ``import fcntl`` fails as on Windows), replaces ``ifaddr.get_adapters`` with the
adapters such a machine reports, and sets ``sys.platform`` before importing movex_p2p.
The standard library and our dependencies are imported first, under the real platform: they
pick their platform code at import time (asyncio, multiprocessing, rich), and are tested on
those platforms by their own wheels' CI; what is checked here is our code.

Interface discovery through ifaddr is also checked against the 0.1 implementation (the Linux
``SIOCGIFADDR`` ioctl, kept below as the reference) on this machine and in a namespace with
aliases, secondary and link-local addresses, interfaces down or without an address.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import ifaddr
import pytest

from movex_p2p.transport.interfaces import adapter_summary, default_interfaces, usable_interfaces

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "movex_p2p"

WINDOWS_ADAPTERS = """[
    ifaddr.Adapter("{3E5C4B2A-0000-4C1B-9D8A-1A2B3C4D5E6F}", "Loopback Pseudo-Interface 1",
                   [ifaddr.IP("127.0.0.1", 8, "Loopback"), ifaddr.IP(("::1", 0, 0), 128, "Loopback")], 1),
    ifaddr.Adapter("{846EE342-7039-11DE-9D20-806E6F6E6963}", "Wi-Fi",
                   [ifaddr.IP(("fe80::1c2d", 0, 7), 64, "Wi-Fi"), ifaddr.IP("192.168.1.23", 24, "Wi-Fi")], 7),
    ifaddr.Adapter("{C0FFEE00-1111-2222-3333-444455556666}", "ZeroTier One [8056c2e21c000001]",
                   [ifaddr.IP("10.147.17.5", 24, "ZeroTier One [8056c2e21c000001]")], 12),
    ifaddr.Adapter("{BADCAFE0-1111-2222-3333-444455556666}", "Bluetooth Network Connection",
                   [ifaddr.IP(("fe80::9", 0, 9), 64, "Bluetooth")], 9),
]"""

MACOS_ADAPTERS = """[
    ifaddr.Adapter("lo0", "lo0", [ifaddr.IP("127.0.0.1", 8, "lo0"), ifaddr.IP(("::1", 0, 0), 128, "lo0")], 1),
    ifaddr.Adapter("en0", "en0", [ifaddr.IP("192.168.1.30", 24, "en0")], 6),
    ifaddr.Adapter("awdl0", "awdl0", [ifaddr.IP(("fe80::4", 0, 11), 64, "awdl0")], 11),
    ifaddr.Adapter("utun3", "utun3", [ifaddr.IP("100.101.102.103", 32, "utun3")], 15),
    ifaddr.Adapter("feth1234", "feth1234", [ifaddr.IP("10.147.17.6", 24, "feth1234")], 16),
]"""

PRELUDE = """
import json, sys
# the standard library and our dependencies pick their platform code at import: import them first
import asyncio, concurrent.futures, multiprocessing, selectors, socket, subprocess, threading
import aiortc, anyio, cbor2, ifaddr, rich.console, rich.live, rich.table, rich.text, zeroconf, zeroconf.asyncio
assert "movex_p2p" not in sys.modules
sys.modules["fcntl"] = None  # `import fcntl` now fails, as on Windows
ifaddr.get_adapters = lambda include_unconfigured=False: ADAPTERS
sys.platform = PLATFORM
"""

CHECK_IMPORT = """
import movex_p2p as mx
from movex_p2p.transport.interfaces import usable_interfaces
transport = mx.LanTransport()  # the default transport of every Peer: no ImportError
import movex_p2p.cli, movex_p2p.embed, movex_p2p.transport.lan  # every module of ours imports here
try:
    usable_interfaces(["no-such-adapter"])
except ValueError as exc:
    unknown = str(exc)
report = {
    "platform": sys.platform,
    "default": usable_interfaces(None),
    "named": usable_interfaces(NAMED),
    "unknown": unknown,
    "fcntl": sys.modules["fcntl"] is not None,
    "namespace_problem": movex_p2p.cli.namespace_problem(),
}
print(json.dumps(report))
"""

CHECK_ROOM = """
import anyio
import movex_p2p as mx

def counter(state, action):
    return {"count": state["count"] + 1}

Counter = mx.ResourceType("counter", counter, initial={"count": 0})

async def room():
    network = mx.LocalNetwork()
    async with mx.Peer(room="r", types=[Counter], transport=network, name="a", seed=1) as a, mx.Peer(
        room="r", types=[Counter], transport=network, name="b", seed=2
    ) as b:
        await a.wait_ready()
        await b.wait_ready()
        shared = await a.bind(await a.create(Counter, id="c"))
        mirror = await b.bind(shared.rid)
        await shared.dispatch(mx.Action("increment"))
        await mirror.dispatch(mx.Action("increment"))
        with anyio.fail_after(10):
            for res in (shared, mirror):
                async for state in res.updates():  # the view now, then after each change
                    if state["count"] == 2:
                        break
        print(json.dumps({"platform": sys.platform, "counts": [shared.state["count"], mirror.state["count"]]}))

anyio.run(room)
"""

CHECK_DEMO = """
from movex_p2p.cli import main
sys.exit(main(["demo", "--peers", "3", "--seconds", "3"]))
"""

PLATFORMS = {
    "win32": (WINDOWS_ADAPTERS, ["Wi-Fi", "zerotier one [8056c2e21c000001]", "192.168.1.23"]),
    "darwin": (MACOS_ADAPTERS, ["en0", "utun3"]),
}


def simulate(platform: str, check: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    adapters, named = PLATFORMS[platform]
    script = f"PLATFORM = {platform!r}\nNAMED = {named!r}\nimport ifaddr\nADAPTERS = {adapters}\n{PRELUDE}{check}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def last_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_windows_without_fcntl_imports_and_finds_its_adapters() -> None:
    report = last_json(simulate("win32", CHECK_IMPORT))
    assert report["platform"] == "win32"
    assert report["fcntl"] is False
    assert report["default"] == ["192.168.1.23", "10.147.17.5"]  # loopback and IPv6-only adapters left out
    assert report["named"] == ["192.168.1.23", "10.147.17.5"]  # by display name, case-insensitively too
    assert "no network adapter named 'no-such-adapter'" in report["unknown"]
    assert "Wi-Fi [192.168.1.23]" in report["unknown"]
    assert "ZeroTier One [8056c2e21c000001] [10.147.17.5]" in report["unknown"]
    assert report["namespace_problem"] == "network namespaces need Linux"


def test_macos_without_fcntl_imports_and_finds_its_adapters() -> None:
    report = last_json(simulate("darwin", CHECK_IMPORT))
    assert report["platform"] == "darwin"
    assert report["default"] == ["192.168.1.30", "100.101.102.103", "10.147.17.6"]
    assert report["named"] == ["192.168.1.30", "100.101.102.103"]
    assert "en0 [192.168.1.30], awdl0 [no IPv4]" in report["unknown"]
    assert report["namespace_problem"] == "network namespaces need Linux"


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_a_room_runs_in_process(platform: str) -> None:
    assert last_json(simulate(platform, CHECK_ROOM)) == {"platform": platform, "counts": [2, 2]}


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_demo_falls_back_to_in_process_peers(platform: str) -> None:
    done = simulate(platform, CHECK_DEMO, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "process demo unavailable (network namespaces need Linux): running in-process peers" in done.stdout
    assert "VERDICT: states equal, nothing lost" in done.stdout


# --- adapters (stubbed, in process) ----------------------------------------------------------


def adapter(name: str, *ips: str, nice: str | None = None) -> ifaddr.Adapter:
    return ifaddr.Adapter(name, nice or name, [ifaddr.IP(ip, 24, nice or name) for ip in ips])


ADAPTERS = [
    adapter("lo", "127.0.0.1", "127.0.0.2"),
    adapter("eth0", "192.168.1.5", "192.168.1.6"),
    adapter("eth0:1", "10.9.9.9"),  # a Linux alias label: the same interface
    adapter("wlan0"),  # no address at all
    adapter("{GUID-1}", "10.147.17.5", nice="ZeroTier One [8056c2e21c000001]"),
    adapter("tun0", "127.0.0.9"),  # a first address that is loopback: the interface is left out (as 0.1 did)
]


def test_default_interfaces_take_each_interfaces_first_ipv4_address() -> None:
    assert default_interfaces(ADAPTERS) == ["192.168.1.5", "10.147.17.5"]


def test_adapter_names_resolve_to_their_addresses() -> None:
    assert usable_interfaces(["eth0"], adapters=ADAPTERS) == ["192.168.1.5", "192.168.1.6", "10.9.9.9"]
    assert usable_interfaces(["eth0:1"], adapters=ADAPTERS) == ["10.9.9.9"]
    assert usable_interfaces(["ZeroTier One [8056c2e21c000001]"], adapters=ADAPTERS) == ["10.147.17.5"]
    assert usable_interfaces(["{GUID-1}", "10.147.17.5"], adapters=ADAPTERS) == ["10.147.17.5"]  # no duplicate
    assert usable_interfaces(["lo"], adapters=ADAPTERS) == ["127.0.0.2"]  # aioice ignores 127.0.0.1
    assert usable_interfaces("ETH0:1", adapters=ADAPTERS) == ["10.9.9.9"]  # one name alone; any case


def test_unknown_or_addressless_adapters_are_clear_value_errors() -> None:
    with pytest.raises(ValueError, match=r"no network adapter named 'eth9'; adapters found: lo \[127.0.0.1, 127"):
        usable_interfaces(["eth9"], adapters=ADAPTERS)
    with pytest.raises(ValueError, match=r"'wlan0' has no usable IPv4 address.*wlan0 \[no IPv4\]"):
        usable_interfaces(["wlan0"], adapters=ADAPTERS)
    with pytest.raises(ValueError, match="expected an IPv4 address or an adapter name"):
        usable_interfaces([""], adapters=ADAPTERS)
    assert "ZeroTier One [8056c2e21c000001] [10.147.17.5]" in adapter_summary(ADAPTERS)


def test_a_machine_without_a_lan_address_says_what_it_found() -> None:
    from movex_p2p.errors import TransportError

    with pytest.raises(TransportError, match=r"no non-loopback IPv4 interface \(adapters: lo \[127.0.0.1\]\)"):
        usable_interfaces(None, adapters=[adapter("lo", "127.0.0.1")])


# --- the 0.1 ioctl implementation, kept as the reference on Linux ----------------------------


def ioctl_interfaces() -> list[str]:
    """What 0.1 returned: SIOCGIFADDR (Linux only) on every interface, loopback left out."""
    import fcntl

    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
            address = socket.inet_ntoa(raw[20:24])
            if not ipaddress.IPv4Address(address).is_loopback:
                found.append(address)
    return found


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reference is a Linux ioctl")


@linux_only
def test_same_addresses_as_the_ioctl_version_on_this_machine() -> None:
    assert default_interfaces() == ioctl_interfaces()


NAMESPACE_SETUP = " && ".join(
    [
        "ip link set lo up",
        "ip addr add 127.0.0.2/8 dev lo",
        "ip addr add 10.99.0.1/32 dev lo",  # a non-loopback address on lo: lo stays out
        "ip link add v0 type veth peer name v1",
        "ip addr add 172.16.0.1/12 dev v0",
        "ip addr add 172.16.0.2/12 dev v0",  # secondary
        "ip addr add 10.9.9.9/24 dev v0 label v0:1",  # alias label
        "ip addr add 169.254.3.3/16 dev v1",  # link-local, interface down
        "ip link add w0 type veth peer name w1",
        "ip link set w0 up",
        "ip addr add 192.168.5.5/16 dev w0",  # w1: no address at all
        "ip link add br0 type bridge",
        "ip link add very-long-name0 type veth peer name x1",
        "ip addr add 10.5.0.1/8 dev very-long-name0",
        "ip addr add 127.0.0.5/8 dev x1",  # a loopback-range first address on a real interface
        "ip addr add 10.6.0.1/8 dev x1",
    ]
)

COMPARE = """
import json
from tests.test_platforms import ioctl_interfaces
from movex_p2p.transport.interfaces import default_interfaces
print(json.dumps([default_interfaces(), ioctl_interfaces()]))
"""


@linux_only
def test_same_addresses_as_the_ioctl_version_with_aliases_secondaries_and_link_local() -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c", f'{NAMESPACE_SETUP} && exec "$0" -c "$1"', sys.executable, COMPARE],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
        check=False,
    )
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot create a network namespace: {done.stderr.strip()}")
    ours, reference = last_json(done)
    assert ours == reference == ["169.254.3.3", "172.16.0.1", "192.168.5.5", "10.5.0.1"]


# --- nothing platform-bound in the library ----------------------------------------------------

UNIX_ONLY_MODULES = {"fcntl", "termios", "pwd", "grp", "resource", "posix", "tty", "pty", "crypt", "syslog"}
UNIX_ONLY_CALLS = {"geteuid", "getuid", "getegid", "fork", "setsid", "killpg", "getpgid", "ioctl", "SIGKILL"}
ALLOWED = {("cli.py", "only_loopback")}
"""The demo's namespace path (Linux only by design; it checks sys.platform first)."""
BEDS = {"netns.py", "multihost.py", "peer.py"}
"""movex_p2p.testing's process beds and their peer program: they run only in Linux network namespaces."""


def test_the_library_uses_no_unix_only_module_or_call() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.parent.name == "testing" and path.name in BEDS:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [f"{path.name}: import {a.name}" for a in node.names if a.name in UNIX_ONLY_MODULES]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in UNIX_ONLY_MODULES:
                found.append(f"{path.name}: from {node.module} import")
            elif isinstance(node, ast.Attribute) and node.attr in UNIX_ONLY_CALLS:
                found.append(f"{path.name}: .{node.attr}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("/proc"):
                found.append(f"{path.name}: {node.value}")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and (path.name, node.name) not in ALLOWED:
                calls = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                if "if_nameindex" in calls:
                    found.append(f"{path.name}: {node.name} uses socket.if_nameindex")
    assert found == []
