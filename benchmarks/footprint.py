"""A peer's footprint: import time and memory of movex_p2p, against a baseline checkout.

Each figure comes from fresh interpreters (wall and CPU time of the import, VmRSS after it),
baseline and ours alternating so both see the same load; medians of ``--runs``. The idle peer
runs inside a private network namespace (``unshare -rn``; nothing leaves it): two peers join a
room on ``127.0.0.2``, and each reports its resident memory (VmRSS) one second after its link
is up.

    mkdir -p ../base && git archive <base commit> src | tar -x -C ../base      # the checkout to compare with
    python benchmarks/footprint.py --baseline-src ../base/src --runs 7

Rows: ``import movex_p2p``; ``import movex_p2p.transport.webrtc`` (what a LAN peer imports:
aiortc, and PyAV unless stubbed); ``import aiortc`` alone (reference); an idle LAN peer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUP = "ip link set lo up multicast on && ip addr add 127.0.0.2/8 dev lo"

IMPORT = """
import time
started, cpu = time.perf_counter(), time.process_time()
import {module}
took, cpu = time.perf_counter() - started, time.process_time() - cpu
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(took, cpu, rss / 1024)
"""

PEER = """
import sys, time, anyio
import movex_p2p as mx

def rss():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:")) / 1024

async def main(name):
    async with mx.Peer(room="footprint", types=[], name=name, transport=mx.LanTransport(["127.0.0.2"])) as peer:
        with anyio.fail_after(30):
            while not peer.peers:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            await peer.wait_ready()
        await anyio.sleep(1.0)
        print(rss(), flush=True)
        await anyio.sleep(0.5)  # the other one measures too before we leave

anyio.run(main, sys.argv[1])
"""

PAIR = 'python_=$0; "$python_" -c "$1" a & "$python_" -c "$1" b; wait'


def env(src: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": src}


def import_once(module: str, src: str) -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT.format(module=module)],
        capture_output=True,
        text=True,
        env=env(src),
        check=True,
        timeout=120,
    ).stdout.split()
    return float(out[0]) * 1000, float(out[1]) * 1000, float(out[2])


def peer_once(src: str) -> list[float]:
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c", f"{SETUP} && {PAIR}", sys.executable, textwrap.dedent(PEER)],
        capture_output=True,
        text=True,
        env=env(src),
        check=False,
        timeout=120,
    )
    if done.returncode != 0 or len(done.stdout.split()) != 2:
        print(f"  idle peers failed (rc {done.returncode}): {done.stdout!r} {done.stderr[-2000:]}", flush=True)
        return []
    return [float(x) for x in done.stdout.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--baseline-src", required=True, help="the src directory of the checkout to compare with")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-peer", action="store_true", help="skip the idle peer (needs unshare -rn)")
    args = parser.parse_args()
    sources = {"baseline": args.baseline_src, "ours": str(ROOT / "src")}
    rows = []
    for module in ("movex_p2p", "movex_p2p.transport.webrtc", "aiortc"):
        ms: dict[str, list[float]] = {name: [] for name in sources}
        cpu: dict[str, list[float]] = {name: [] for name in sources}
        mb: dict[str, list[float]] = {name: [] for name in sources}
        for _ in range(args.runs):
            for name, src in sources.items():
                took, used, rss = import_once(module, src)
                ms[name].append(took)
                cpu[name].append(used)
                mb[name].append(rss)
        rows.append((f"import {module}", ms, cpu, mb))
        print(f"  {rows[-1][0]}: " + ", ".join(f"{n} {statistics.median(ms[n]):.0f} ms" for n in sources), flush=True)
    if not args.no_peer:
        peers: dict[str, list[float]] = {name: [] for name in sources}
        for _ in range(args.runs):
            for name, src in sources.items():
                peers[name] += peer_once(src)
        print("  idle peer samples: " + ", ".join(f"{n} {len(peers[n])}" for n in sources), flush=True)
        rows.append(("idle LAN peer, one link (RSS only)", {}, {}, peers))
    print("\n| what | wall ms, baseline / ours | CPU ms, baseline / ours | RSS MB, baseline / ours |")
    print("|---|---|---|---|")
    for what, ms, cpu, mb in rows:
        cells = [
            " / ".join(f"{statistics.median(column[n]):.{digits}f}" for n in sources) if column else "-"
            for column, digits in ((ms, 0), (cpu, 0), (mb, 1))
        ]
        print(f"| {what} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
