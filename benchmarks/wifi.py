"""A room on a lossy LAN: failover, throughput, spurious changes, startup and big states under packet loss.

Every peer is a process on its own "host" (a network namespace on a bridge, movex_p2p.testing.multihost)
and nftables on the bridge drops P % of the packets into and out of every host (so about 2P %
between two hosts). Needs root (``ip netns add``) and nftables; nothing leaves the machine.

    python benchmarks/wifi.py                        # every table (~35 min)
    python benchmarks/wifi.py --only failover --runs 5 --loss 0 5
    python benchmarks/wifi.py --only join --json wifi.json
    python benchmarks/wifi.py --only scale --peers 12 --seconds 60
    python benchmarks/wifi.py --only burst --runs 20 --loss 0 2 5 10 --burst-peers 4
    python benchmarks/wifi.py --only startup failover --runs 20 --loss 10 --compare-setup

Tables:
- timers: plain aiortc between two hosts at ``--timers-loss`` % (default 5), with aiortc's SCTP
  retransmission timers and with ours (``movex_p2p.transport.webrtc.LAN_RTO``): round trips of
  1000 pings sent one at a time (p50, p90, p99, max) and MB/s of a 4 MB bulk transfer;
- failover: 4 peers dispatching every 10 ms, the master SIGKILLed; time until every survivor had
  an action confirmed by the new master (p50, max), lost / doubled actions;
- burst: ``--burst-peers`` (default 4) peers play (an action every ``--burst-interval`` s each,
  default 0.025); every non-master dispatches ``--burst`` (default 100) actions at once, then 10
  more, and the master is SIGKILLed
  right after (issue 15): seconds from the kill until every survivor's last burst handle settled
  (p50, max), beside the paced failover (the failover table's measure) run in the same loop,
  lost / doubled / stuck actions and failed runs (a handle that never settled, two checksums);
- merge: a host plays alone 1.5 s, then 3 peers start at once (one may be elected); everyone
  plays 2 s more: the host's actions rejected (0 expected), lost / doubled, failed runs (issue 16);
- steady: 4 peers playing for ``--seconds`` (default 60); master changes and peers declared dead
  while nobody left (spurious, both should be 0), confirmed actions/s of the room;
- startup: 4 peers started together; seconds from the last one entering its room until nobody
  changes master any more (p50, p90, max), runs where some peer was not ready within 60 s (a
  link that never opened), how many peers were ever master (1 = no peer elected itself by
  mistake) and for how long two peers were master at once (a split room);

``--compare-setup``: the startup and failover tables run each run twice, interleaved, once with
aiortc as shipped ("stock": peers started with MOVEX_BENCH_STOCK_SETUP=1) and once with our link
setup workarounds (``RtcSession.link_setup_fixes``: DTLS handshake copies, ICE check timeout, INIT tag).
- join: a late joiner of a room holding 1, 10 and 100 MB of state (resources of 1 MB each):
  ``Peer.__aenter__`` -> ready with every resource, MB/s, against raw aiortc bulk MB/s (one
  data channel, 64 KiB messages, no movex_p2p) between the same two hosts in the same run; the
  p99 gap between election heartbeats at the joiner while a 50 MB snapshot streams;
- scale: ``--peers`` (default 12) processes, one per host: steady play for ``--seconds`` at 5 %
  loss (master changes, deaths, lost, doubled), then ``--runs`` SIGKILLs of the master mid-play
  at 0 % and at 5 % (time until every survivor had an action confirmed, lost / doubled).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import anyio

from movex_p2p.testing.multihost import open_hosts, unavailable_reason
from movex_p2p.testing.peer import STOCK_SETUP
from movex_p2p.testing.wifi_bed import (
    failover_at_loss,
    failover_with_burst,
    join,
    raw_bulk,
    raw_pings,
    startup,
    startup_merge,
    steady,
)

Row = dict[str, Any]
TABLES = ["timers", "failover", "burst", "merge", "steady", "startup", "join", "scale"]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timers_rows(loss: int) -> list[Row]:
    rows = []
    for lan in (False, True):
        async with open_hosts(2) as hosts:
            hosts.set_loss(loss)
            pings = await raw_pings(hosts, 1000, lan_timers=lan)
        async with open_hosts(2) as hosts:
            hosts.set_loss(loss)
            bulk = await raw_bulk(hosts, 4, lan_timers=lan)
        rows.append(
            {
                "loss": loss,
                "sctp_timers": "ours (LAN_RTO)" if lan else "aiortc's",
                "ping_p50_ms": round(_percentile(pings, 0.5), 1),
                "ping_p90_ms": round(_percentile(pings, 0.9), 1),
                "ping_p99_ms": round(_percentile(pings, 0.99), 1),
                "ping_max_ms": round(max(pings), 1),
                "bulk_mb_per_s": round(bulk, 2),
            }
        )
        print(f"  timers: {rows[-1]}", flush=True)
    return rows


async def failover_rows(losses: list[int], runs: int, setups: list[str]) -> list[Row]:
    rows = []
    for loss in losses:
        pauses: dict[str, list[float]] = {s: [] for s in setups}
        lost, doubled, bad = dict.fromkeys(setups, 0), dict.fromkeys(setups, 0), dict.fromkeys(setups, 0)
        for run in range(runs):
            for setup in setups:  # interleaved: both see the same load
                _setup(setup)
                async with open_hosts(4) as hosts:
                    result = await failover_at_loss(hosts, 4, loss, run=run)
                pauses[setup].append(result.pause)
                lost[setup] += result.lost
                doubled[setup] += result.doubled
                bad[setup] += not result.ok
                print(
                    f"  failover {loss}% {setup} run {run + 1}/{runs}: {result.pause * 1000:.0f} ms ok={result.ok}",
                    flush=True,
                )
        _setup("ours")
        for setup in setups:
            good = [p for p in pauses[setup] if p == p]  # NaN: a survivor never had anything confirmed
            rows.append(
                {
                    "loss": loss,
                    "link_setup": setup,
                    "runs": runs,
                    "p50_ms": round(statistics.median(good) * 1000) if good else None,
                    "max_ms": round(max(good) * 1000) if good else None,
                    "lost": lost[setup],
                    "doubled": doubled[setup],
                    "failed_runs": bad[setup],
                }
            )
    return rows


async def burst_rows(
    losses: list[int],
    runs: int,
    burst: int,
    peer_counts: list[int],
    *,
    paced_too: bool = True,
    interval: float = 0.025,
) -> list[Row]:
    rows = []
    for peers in peer_counts:
        for loss in losses:
            settled, paced, lost, doubled, stuck, bad = [], [], 0, 0, 0, 0
            for run in range(runs):
                async with open_hosts(4) as hosts:
                    result = await failover_with_burst(
                        hosts, peers, loss, burst=burst, run=run, within=60, interval=interval
                    )
                pause = float("nan")
                if paced_too:
                    async with open_hosts(4) as hosts:
                        pause = (await failover_at_loss(hosts, peers, loss, run=run)).pause
                settled.append(result.settled_after)
                paced.append(pause)
                lost, doubled, stuck = lost + result.lost, doubled + result.doubled, stuck + result.stuck
                bad += not result.ok
                where = f"{peers} peers {loss}% run {run + 1}/{runs}"
                print(
                    f"  burst {where}: settled {result.settled_after * 1000:.0f} ms, "
                    f"paced {pause * 1000:.0f} ms, ok={result.ok} {result.problems or ''}",
                    flush=True,
                )
            good = [x for x in settled if x != float("inf")]
            good_paced = [x for x in paced if x == x]
            rows.append(
                {
                    "peers": peers,
                    "loss": loss,
                    "runs": runs,
                    "burst": burst,
                    "play_per_s": round(1 / interval),
                    "settled_p50_ms": round(statistics.median(good) * 1000) if good else None,
                    "settled_max_ms": round(max(good) * 1000) if good else None,
                    "paced_p50_ms": round(statistics.median(good_paced) * 1000) if good_paced else None,
                    "lost": lost,
                    "doubled": doubled,
                    "stuck": stuck,
                    "failed_runs": bad,
                }
            )
    return rows


async def merge_rows(runs: int) -> list[Row]:
    rejected, lost, doubled, bad = 0, 0, 0, 0
    for run in range(runs):
        async with open_hosts(4) as hosts:
            result = await startup_merge(hosts, run=run)
        rejected, lost, doubled = rejected + result.rejected, lost + result.lost, doubled + result.doubled
        bad += result.rejected > 0 or (result.checksums, result.masters) != (1, 1)
        print(f"  merge run {run + 1}/{runs}: {result}", flush=True)
    return [{"runs": runs, "host_rejected": rejected, "lost": lost, "doubled": doubled, "failed_runs": bad}]


async def steady_rows(losses: list[int], seconds: float) -> list[Row]:
    rows = []
    for loss in losses:
        async with open_hosts(4) as hosts:
            hosts.set_loss(loss)
            result = await steady(hosts, 4, seconds)
        per_minute = 60.0 / seconds
        rows.append(
            {
                "loss": loss,
                "seconds": seconds,
                "master_changes_per_min": round(result.master_changes * per_minute, 2),
                "declared_dead_per_min": round(result.declared_dead * per_minute, 2),
                "confirmed_per_s": round(result.confirmed / seconds),
                "lost": result.lost,
                "ok": result.ok,
            }
        )
        print(f"  steady {loss}%: {rows[-1]}", flush=True)
    return rows


def _setup(name: str) -> None:
    """Peers spawned from now on set links up with our workarounds ("ours") or without ("stock")."""
    if name == "stock":
        os.environ[STOCK_SETUP] = "1"
    else:
        os.environ.pop(STOCK_SETUP, None)


async def startup_rows(losses: list[int], runs: int, setups: list[str]) -> list[Row]:
    rows = []
    for loss in losses:
        agreed: dict[str, list[float]] = {s: [] for s in setups}
        masters: dict[str, list[int]] = {s: [] for s in setups}
        splits: dict[str, list[float]] = {s: [] for s in setups}
        failed = dict.fromkeys(setups, 0)
        for run in range(runs):
            for setup in setups:  # interleaved: both see the same load
                _setup(setup)
                try:
                    async with open_hosts(4) as hosts:
                        hosts.set_loss(loss)
                        result = await startup(hosts, 4)
                except (TimeoutError, AssertionError) as exc:  # a link never opened, or two rooms
                    failed[setup] += 1
                    print(f"  startup {loss}% {setup} run {run + 1}/{runs}: FAILED {exc!r}", flush=True)
                    continue
                agreed[setup].append(result.agreed_after)
                masters[setup].append(result.masters_seen)
                splits[setup].append(result.split_for)
                print(
                    f"  startup {loss}% {setup} run {run + 1}/{runs}: agreed after {result.agreed_after:.2f} s, "
                    f"{result.masters_seen} master(s), two at once for {result.split_for:.2f} s",
                    flush=True,
                )
        _setup("ours")
        for setup in setups:
            good = agreed[setup]
            rows.append(
                {
                    "loss": loss,
                    "link_setup": setup,
                    "runs": runs,
                    "agreed_p50_s": round(statistics.median(good), 2) if good else None,
                    "agreed_p90_s": round(_percentile(good, 0.9), 2) if good else None,
                    "agreed_max_s": round(max(good), 2) if good else None,
                    "failed_runs": failed[setup],
                    "runs_with_one_master": sum(1 for m in masters[setup] if m == 1),
                    "two_masters_at_once_max_s": round(max(splits[setup]), 2) if good else None,
                }
            )
    return rows


async def join_rows(sizes: list[int], loss: int) -> list[Row]:
    rows = []
    async with open_hosts(2) as hosts:
        hosts.set_loss(loss)
        raw = await raw_bulk(hosts, max(sizes))
        print(f"  raw aiortc bulk: {raw:.1f} MB/s", flush=True)
    for mb in sizes:
        async with open_hosts(2) as hosts:
            hosts.set_loss(loss)
            result = await join(hosts, mb)
        rows.append(
            {
                "loss": loss,
                "state_mb": mb,
                "join_s": round(result.seconds, 2),
                "mb_per_s": round(mb / result.seconds, 1),
                "raw_aiortc_mb_per_s": round(raw, 1),
                "heartbeat_gap_p99_ms": round(result.heartbeat_gap_p99 * 1000),
                "heartbeat_gap_max_ms": round(result.heartbeat_gap_max * 1000),
            }
        )
        print(f"  join {mb} MB: {rows[-1]}", flush=True)
    return rows


async def scale_rows(peers: int, seconds: float, runs: int) -> list[Row]:
    rows: list[Row] = []
    async with open_hosts(peers) as hosts:
        hosts.set_loss(5)
        result = await steady(hosts, peers, seconds, tag="big")
    rows.append(
        {
            "peers": peers,
            "what": f"steady {seconds:.0f} s at 5 %",
            "master_changes": result.master_changes,
            "declared_dead": result.declared_dead,
            "lost": result.lost,
            "doubled": result.doubled,
            "result": f"{result.confirmed / seconds:.0f} confirmed/s" + ("" if result.ok else f" {result.problems}"),
        }
    )
    print(f"  scale: {rows[-1]}", flush=True)
    for loss in (0, 5):
        pauses, lost, doubled, bad = [], 0, 0, 0
        for run in range(runs):
            async with open_hosts(peers) as hosts:
                failover = await failover_at_loss(hosts, peers, loss, run=run)
            pauses.append(failover.pause)
            lost, doubled, bad = lost + failover.lost, doubled + failover.doubled, bad + (not failover.ok)
            print(f"  scale failover {loss}% run {run + 1}/{runs}: {failover.pause * 1000:.0f} ms ok={failover.ok}")
        good = [p for p in pauses if p == p]
        rows.append(
            {
                "peers": peers,
                "what": f"master SIGKILLed at {loss} % ({runs} runs)",
                "master_changes": "-",
                "declared_dead": "-",
                "lost": lost,
                "doubled": doubled,
                "result": (
                    f"all confirmed after p50 {statistics.median(good) * 1000:.0f} ms, max {max(good) * 1000:.0f} ms"
                    if good
                    else "never"
                )
                + (f"; {bad} failed runs" if bad else ""),
            }
        )
        print(f"  scale: {rows[-1]}", flush=True)
    return rows


def table(rows: list[Row]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    reason = unavailable_reason()
    if reason is not None:
        print(f"cannot run: {reason}")
        return 2
    started = time.monotonic()
    results: dict[str, list[Row]] = {}
    only = set(args.only or TABLES)
    setups = ["stock", "ours"] if args.compare_setup else ["ours"]
    tables = {
        "timers": lambda: timers_rows(args.timers_loss),
        "failover": lambda: failover_rows(args.loss, args.runs, setups),
        "merge": lambda: merge_rows(args.runs),
        "burst": lambda: burst_rows(
            args.loss,
            args.runs,
            args.burst,
            args.burst_peers,
            paced_too=not args.no_paced,
            interval=args.burst_interval,
        ),
        "steady": lambda: steady_rows(args.loss, args.seconds),
        "startup": lambda: startup_rows(args.loss, args.runs, setups),
        "join": lambda: join_rows(args.sizes, 0),
        "scale": lambda: scale_rows(args.peers, args.seconds, args.runs),
    }
    for name in TABLES:
        if name in only:
            results[name] = await tables[name]()
            if args.json:  # after each table: a later failure keeps what was measured
                await anyio.Path(args.json).write_text(json.dumps(results, indent=2))
    for name, rows in results.items():
        print(f"\n{name}\n{table(rows)}")
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", nargs="+", choices=TABLES)
    parser.add_argument("--timers-loss", type=int, default=5)
    parser.add_argument("--peers", type=int, default=12, help="peers of the scale table")
    parser.add_argument("--loss", type=int, nargs="+", default=[0, 2, 5, 10])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--burst", type=int, default=100, help="actions each survivor sends at once (burst)")
    parser.add_argument("--no-paced", action="store_true", help="burst table: skip the paced failover beside it")
    parser.add_argument("--burst-peers", type=int, nargs="+", default=[4], help="room sizes of the burst table")
    parser.add_argument(
        "--burst-interval",
        type=float,
        default=0.025,
        help="burst table: seconds between two actions of each peer's steady play before the kill",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument(
        "--compare-setup",
        action="store_true",
        help="startup, failover: each run also without the link-setup workarounds (aiortc as shipped)",
    )
    parser.add_argument("--json", default=None)
    sys.exit(anyio.run(main, parser.parse_args()))
