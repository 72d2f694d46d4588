"""CPU of the signaling handshake: the PAKE alone and a whole handshake, ours against another checkout's.

Run: python benchmarks/handshake.py [--baseline-src ../base/src] [--rounds 7] [--n 100]

Each kind runs in a fresh interpreter per round (this checkout's ``src`` and, with
``--baseline-src``, another's, alternating by round so both see the same machine load):

- ``pake``: one side of one SPAKE2 exchange (start and finish), the mean of ``n`` exchanges;
- ``handshake``: a whole signaling handshake, both roles in one process over in-memory pipes
  (PAKE, signatures, MACs, codec), the mean CPU time of ``n`` handshakes.

The figure is the median of the rounds, in milliseconds, and the baseline / ours ratio. The
baseline before 2026-12-07 (``git archive 6996fd0 src``) runs the ``spake2`` package, which this
checkout no longer depends on: ``pip install spake2`` to measure it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPES = ROOT / "src" / "movex_p2p" / "testing" / "pipes.py"

_WORKER = """
import json, sys, time
import anyio
from movex_p2p.identity import Identity
from movex_p2p.transport import signaling
from movex_p2p.transport.signaling import Exchange, run_dialer, run_listener
from movex_p2p.transport.contact import Contact

kind, n = sys.argv[1], int(sys.argv[2])
key = bytes(32)
if kind == "pake":
    started = time.process_time()
    for _ in range(n):
        a, b = signaling.Pake(key), signaling.Pake(key)
        a.finish(b.message)
        b.finish(a.message)
    print(json.dumps((time.process_time() - started) / (2 * n) * 1e3))
    sys.exit()

import importlib.util  # this checkout's pipes, whichever movex_p2p is measured
spec = importlib.util.spec_from_file_location("pipes", sys.argv[3])
pipes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pipes)
alice, bob = Identity(b"a" * 32), Identity(b"b" * 32)

async def offer(challenge):
    return Exchange(sdp="v=0", me=Contact(peer=alice.id, addresses=("10.0.0.1",), port=1))

async def answer(hello, offer):
    return Exchange(sdp="v=0", me=Contact(peer=bob.id, addresses=("10.0.0.2",), port=1))

async def once():
    dialer, listener = pipes.pipe_pair()
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: run_listener(listener, key=key, identity=bob, name="b", incarnation=1, create_answer=answer)
        )
        await run_dialer(
            dialer, key=key, identity=alice, receiver=bob.id, name="a", incarnation=1, create_offer=offer
        )

async def main():
    await once()  # warm up
    started = time.process_time()
    for _ in range(n):
        await once()
    print(json.dumps((time.process_time() - started) / n * 1e3))

anyio.run(main)
"""


def measure(src: str, kind: str, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", _WORKER, kind, str(n), str(PIPES)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(f"{kind} with {src} failed:\n{out.stderr.strip()[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-src", help="another checkout's src to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=100, help="exchanges or handshakes per round")
    args = parser.parse_args()
    trees = {"ours": str(ROOT / "src")}
    if args.baseline_src:
        trees["baseline"] = str(Path(args.baseline_src).resolve())
    figures: dict[tuple[str, str], list[float]] = {}
    started = time.monotonic()
    for _ in range(args.rounds):
        for kind in ("pake", "handshake"):
            for tree, src in trees.items():
                figures.setdefault((tree, kind), []).append(measure(src, kind, args.n))
    for kind in ("pake", "handshake"):
        ours = statistics.median(figures[("ours", kind)])
        line = f"{kind:10} ours {ours:7.2f} ms CPU"
        if "baseline" in trees:
            base = statistics.median(figures[("baseline", kind)])
            line += f"   baseline {base:7.2f} ms   baseline / ours {base / ours:5.1f}x"
        print(line)
    print(f"({args.rounds} rounds of {args.n}, {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
