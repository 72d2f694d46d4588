"""Node-level LAN benchmark: every peer a movex_p2p.Peer process, all in a private network namespace.

    python benchmarks/lan_node.py --json lan-node.json   # re-executes itself under `unshare -rn`

Measures, in one run:
1. 5 peers: process spawn -> mesh open and a bound resource synced on all (also counted from
   the last peer's ``Peer.__aenter__``), and when the first master was elected; again with a
   0.1 s election timeout (an experiment: the first election's share);
2. dispatch -> confirmed of a non-master peer (each action awaited before the next) against
   the raw aiortc data-channel round trip and our LanEndpoint's echo of the same run
   (benchmarks/lan.py's workers; they always import this checkout's src), and the master's own
   dispatch -> confirmed (local, no network);
3. confirmed actions/s with 4 and 8 peer processes all dispatching with a window in flight,
   counted until every action is confirmed on every peer; lost/doubled/checksums checked;
   ``--only signing``: the same 4-process flood with Ed25519 signatures, then with the fake
   signer (``--fake-signer`` peers: the same protocol with a keyed hash in place of Ed25519, an
   option for this measurement only), alternating, in one run: what Ed25519 costs;
4. RSS per peer process with the Peer running;
5. ``--only s1`` (issue 19, S1): a client's dispatch -> confirmed while strangers flood the
   master's signaling port with failed handshakes (the peer program's ``fail`` role, rotating over
   5,000 source addresses), against the same client with no flood, alternating in one run; and the
   master changes meanwhile. The flooding processes share the machine's CPUs with the peers;
6. ``--only fair`` (issue 20): 4 peer processes (``--fair``); a non-master rolls one die at a time,
   ``mx.master.random_int`` and ``mx.fair.random_int`` alternating, then sealed pairs with plain
   dice and with private draws alternating; dispatch -> confirmed, the fair - master difference
   of the medians per round, whether the author saw its drawn value at its own confirmation, and
   the tally's round trip (a public action, no draw) and the raw aiortc round trip of the same
   round; a fresh room each round. With ``--ab-src DIR``, the rounds of this checkout's peers and of
   DIR's alternate (A/B in one run); ``--only fair-route``: where a fair roll's time goes, stage
   by stage across the master and every player (``--trace-draws`` peers, ``route.draw_stages``),
   against a master roll's stages;
7. ``--only route``: where a non-master's round trip goes, hop by hop (``--trace-route`` peers:
   ``movex_p2p.testing.route`` marks each hop with the clock every process shares), per-hop
   medians, and the raw aiortc round trip of the same run.

The peer processes are the peer program's ``peer`` role (``python -m movex_p2p.testing.peer``).
Never run the peers on a real network.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup
from lan import IN_NAMESPACE, Proc, pct, reexec_in_namespace, stop_all  # benchmarks/ is this script's path[0]

from movex_p2p.testing.netns import ADDRESS
from movex_p2p.testing.route import draw_stages, hops

ROOT = Path(__file__).resolve().parent.parent
PEER = ["-m", "movex_p2p.testing.peer", "peer", "--room", "lan-node", "--tally"]
LAN = ROOT / "benchmarks" / "lan.py"


class Bed:
    """Spawns peer processes inside the namespace this harness runs in."""

    def __init__(self, tg: TaskGroup, profile_dir: str | None, src: str, log: str) -> None:
        self.tg = tg
        self.profile_dir = profile_dir
        self.log = log
        self.env = {**os.environ, "PYTHONPATH": src, "PYTHONUNBUFFERED": "1"}

    async def spawn(self, *args: str) -> Proc:
        process = await anyio.open_process([sys.executable, *args], stderr=None, env=self.env)
        proc = Proc(process)
        self.tg.start_soon(proc.collect)
        return proc

    async def peers(self, n: int, prefix: str, *options: str) -> tuple[list[Proc], float]:
        """Start n Peer processes at once; wait until all are ready; (procs, spawn time)."""
        spawned = time.monotonic()
        procs = []
        for i in range(n):
            extra = [*options, "--log", self.log]
            if self.profile_dir:
                extra += ["--profile", f"{self.profile_dir}/{prefix}{i}.prof"]
            procs.append(
                await self.spawn(*PEER, "--name", f"{prefix}{i}", "--expect", str(n - 1), "--seed", str(i), *extra)
            )
        for proc in procs:
            await proc.wait_ev("ready", within=60)
        return procs, spawned

    async def stop(self, procs: list[Proc]) -> None:
        await stop_all(procs)


def first(proc: Proc, ev: str) -> dict[str, Any]:
    return next(e for e in proc.events if e["ev"] == ev)


async def client_and_master(bed: Bed, prefix: str, *options: str) -> tuple[list[Proc], Proc, Proc]:
    """Two peers, ready: (both, the one that is not master, the master)."""
    procs, _ = await bed.peers(2, prefix, *options)
    master = next(p for p in procs if first(p, "ready")["is_master"])
    return procs, next(p for p in procs if p is not master), master


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def startup(bed: Bed, runs: int, *options: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for run in range(runs):
        procs, spawned = await bed.peers(5, f"s{run}p", *options)
        entering = [first(p, "entering")["t"] for p in procs]
        entered = [first(p, "entered")["t"] for p in procs]
        mesh = max(first(p, "mesh")["t"] for p in procs)
        ready = max(first(p, "ready")["t"] for p in procs)
        masters = [e["t"] for p in procs for e in p.events if e["ev"] == "master" and e["master"] is not None]
        rows.append(
            {
                "spawn_to_all_entering_ms": ms(max(entering) - spawned),
                "enter_spread_ms": ms(max(entering) - min(entering)),
                "spawn_to_mesh_ms": ms(mesh - spawned),
                "spawn_to_synced_ms": ms(ready - spawned),
                "last_enter_to_mesh_ms": ms(mesh - max(entering)),
                "last_enter_to_synced_ms": ms(ready - max(entering)),
                "last_entered_to_synced_ms": ms(ready - max(entered)),
                "first_enter_to_master_ms": ms(min(masters) - min(entering)) if masters else None,
                "last_master_to_synced_ms": ms(ready - max(masters)) if masters else None,
            }
        )
        print(f"startup run {run}: {rows[-1]}", file=sys.stderr)
        await bed.stop(procs)
    return {key: statistics.median(r[key] for r in rows if r[key] is not None) for key in rows[0]} | {"runs": rows}


async def raw_rtt(bed: Bed, n: int, warmup: int) -> list[float]:
    offer = await bed.spawn(str(LAN), "--worker", "raw", "--role", "offer", "--n", str(n + warmup))
    answer = await bed.spawn(str(LAN), "--worker", "raw", "--role", "answer")
    await answer.send(sdp=(await offer.wait_ev("sdp"))["sdp"])
    await offer.send(sdp=(await answer.wait_ev("sdp"))["sdp"])
    samples: list[float] = (await offer.wait_ev("rtt", within=60))["samples"][warmup:]
    await answer.send(cmd="stop")
    await bed.stop([offer, answer])
    return samples


async def endpoint_rtt(bed: Bed, n: int, warmup: int) -> list[float]:
    """Our LanEndpoint alone (benchmarks/lan.py's peer worker echoing 50-byte frames)."""
    procs = [await bed.spawn(str(LAN), "--worker", "peer", "--id", f"e{i}") for i in range(2)]
    await procs[0].wait(lambda e: e["ev"] == "up" and e["peer"] == "e1")
    await procs[0].send(cmd="rtt", peer="e1", n=n + warmup, size=50)
    samples: list[float] = (await procs[0].wait_ev("rtt", within=60))["samples"][warmup:]
    await bed.stop(procs)
    return samples


async def node_rtt(proc: Proc, n: int, warmup: int) -> list[float]:
    proc.events = [e for e in proc.events if e["ev"] != "rtt"]
    await proc.send(cmd="rtt", n=n + warmup)
    samples: list[float] = (await proc.wait_ev("rtt", within=60))["samples"][warmup:]
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50": round(pct(samples, 0.5), 3), "p99": round(pct(samples, 0.99), 3), "n": len(samples)}


async def latency(bed: Bed, n: int, rounds: int) -> dict[str, Any]:
    """Alternate rounds of node and raw samples so both see the same machine load."""
    procs, client, master = await client_and_master(bed, "l")
    ours: list[float] = []
    raw: list[float] = []
    endpoint: list[float] = []
    local: list[float] = []
    for _ in range(rounds):
        ours += await node_rtt(client, n, 100)
        raw += await raw_rtt(bed, n, 100)
        endpoint += await endpoint_rtt(bed, n, 100)
        local += await node_rtt(master, n, 100)
    await bed.stop(procs)
    result: dict[str, Any] = {
        "client": summary(ours),
        "raw_aiortc": summary(raw),
        "endpoint": summary(endpoint),
        "master_local": summary(local),
    }
    result["client_over_raw_p50"] = round(result["client"]["p50"] / result["raw_aiortc"]["p50"], 2)
    result["endpoint_over_raw_p50"] = round(result["endpoint"]["p50"] / result["raw_aiortc"]["p50"], 2)
    return result


async def route_hops(bed: Bed, n: int, rounds: int) -> dict[str, Any]:
    """Per-hop medians of a client's round trips (``movex_p2p.testing.route``), raw aiortc alternating."""
    procs, client, master = await client_and_master(bed, "r", "--trace-route")
    rows: list[dict[str, float]] = []
    raw: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        for proc in procs:  # forget the marks of the start
            proc.events = [e for e in proc.events if e["ev"] != "route"]
            await proc.send(cmd="route")
            await proc.wait_ev("route")
        ours += await node_rtt(client, n, 100)
        marks = {}
        for proc in procs:
            proc.events = [e for e in proc.events if e["ev"] != "route"]
            await proc.send(cmd="route")
            marks[proc] = (await proc.wait_ev("route", within=60))["marks"]
        rows.append(hops(marks[client], marks[master], skip=100))
        raw += await raw_rtt(bed, n, 100)
    await bed.stop(procs)
    result: dict[str, Any] = {hop: round(statistics.median(r[hop] for r in rows), 1) for hop in rows[0]}
    result["client_p50_ms"] = round(pct(ours, 0.5), 3)
    result["raw_aiortc_p50_ms"] = round(pct(raw, 0.5), 3)
    return result


S1_PORT = 47300
"""The signaling port of the s1 phase's first peer (the others take the next ones)."""


async def under_flood(bed: Bed, n: int, samples: int, rounds: int, floods: int) -> dict[str, Any]:
    """A client's round trips with and without strangers flooding the master with failed handshakes."""
    procs = [
        await bed.spawn(
            *PEER, "--name", f"h{i}", "--expect", str(n - 1), "--seed", str(i), "--secret", "s1-bench",
            "--port", str(S1_PORT + i), "--log", bed.log,
        )
        for i in range(n)
    ]  # fmt: skip
    for proc in procs:
        await proc.wait_ev("ready", within=60)
    target = next(i for i, p in enumerate(procs) if first(p, "ready")["is_master"])
    client = next(p for p in procs if not first(p, "ready")["is_master"])
    masters_before = sum(e["ev"] == "master" for p in procs for e in p.events)
    quiet: list[float] = []
    attacked: list[float] = []
    for _ in range(rounds):
        quiet += await node_rtt(client, samples, 50)
        flood = [
            await bed.spawn(
                "-m", "movex_p2p.testing.peer", "fail", "--port", str(S1_PORT + target), "--count", "10000000"
            )
            for _ in range(floods)
        ]
        await anyio.sleep(1.0)  # the flood in full swing
        attacked += await node_rtt(client, samples, 50)
        for proc in flood:
            proc.process.kill()
        await stop_all(flood)
        await anyio.sleep(1.0)
    masters_after = sum(e["ev"] == "master" for p in procs for e in p.events)
    await bed.stop(procs)
    result: dict[str, Any] = {"quiet": summary(quiet), "flooded": summary(attacked)}
    result["flooded_over_quiet_p50"] = round(result["flooded"]["p50"] / result["quiet"]["p50"], 2)
    result["master_changes"] = masters_after - masters_before
    return result


def fair_round(result: dict[str, Any]) -> dict[str, Any]:
    plain, drawn = summary(result["plain"]), summary(result["drawn"])
    return {"plain": plain, "drawn": drawn, "added_p50": round(drawn["p50"] - plain["p50"], 3), "late": result["late"]}


async def fair_draws(bed: Bed, n: int, rounds: int, peers: int = 4) -> dict[str, Any]:
    """Fair public and private draws against master draws and plain sealed pairs, alternating; a fresh
    room of ``peers`` peer processes per round (sealed halves are never revealed here: the author's view
    replays every one it holds, so one room would slow down round after round)."""
    public: list[dict[str, Any]] = []
    private: list[dict[str, Any]] = []
    raw: list[dict[str, float]] = []
    plain: list[dict[str, float]] = []
    for round_ in range(rounds):
        procs, _ = await bed.peers(peers, f"fd{round_}p", "--fair")
        client = next(p for p in procs if not first(p, "ready")["is_master"])
        for cmd, rows in (("fair", public), ("private_draws", private)):
            await client.send(cmd=cmd, n=n, warmup=20)
            rows.append(fair_round(await client.wait_ev(cmd, within=300)))
        plain.append(summary(await node_rtt(client, n, 20)))
        await bed.stop(procs)
        raw.append(summary(await raw_rtt(bed, n, 100)))
        print(
            f"fair round {round_}: public {public[-1]}, private {private[-1]}, tally {plain[-1]}, raw {raw[-1]}",
            file=sys.stderr,
        )

    def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "plain_p50": statistics.median(r["plain"]["p50"] for r in rows),
            "drawn_p50": statistics.median(r["drawn"]["p50"] for r in rows),
            "added_p50": statistics.median(r["added_p50"] for r in rows),
            "added_p50_per_round": [r["added_p50"] for r in rows],
            "late": sum(r["late"] for r in rows),
            "rolls": rounds * (2 * n + 20),
        }

    return {
        "public": medians(public) | {"rounds": public},
        "private": medians(private) | {"rounds": private},
        "tally_p50": statistics.median(r["p50"] for r in plain),
        "tally": plain,
        "raw_aiortc_p50": statistics.median(r["p50"] for r in raw),
        "raw_aiortc": raw,
    }


async def fair_ab(ours: Bed, theirs: Bed, n: int, rounds: int, peers: int) -> dict[str, Any]:
    """``fair_draws`` of one round each, the two trees alternating (``--ab-src``; the first tree first in even
    rounds): per tree, the added latency, the tally's round trip and their ratio, per round and medians."""
    rows: dict[str, list[dict[str, Any]]] = {"src": [], "ab_src": []}
    for round_ in range(rounds):
        order = [("src", ours), ("ab_src", theirs)]
        for key, bed in order if round_ % 2 == 0 else order[::-1]:
            rows[key].append(await fair_draws(bed, n, 1, peers))

    def kept(results: list[dict[str, Any]]) -> dict[str, Any]:
        added = [r["public"]["added_p50"] for r in results]
        tally = [r["tally_p50"] for r in results]
        ratio = [round(a / t, 2) for a, t in zip(added, tally, strict=True)]
        private = [r["private"]["added_p50"] for r in results]
        return {
            "added_p50": statistics.median(added),
            "tally_p50": statistics.median(tally),
            "added_over_tally": statistics.median(ratio),
            "private_added_p50": statistics.median(private),
            "late": sum(r["public"]["late"] + r["private"]["late"] for r in results),
            "per_round": {"added": added, "tally": tally, "ratio": ratio, "private": private},
        }

    return {key: kept(results) for key, results in rows.items()}


async def fair_route(bed: Bed, n: int, rounds: int, peers: int) -> dict[str, Any]:
    """Per-stage medians of fair and master rolls (``--trace-draws`` peers, ``route.draw_stages``), a
    fresh room of ``peers`` per round; the medians over the rounds."""
    rows: list[dict[str, dict[str, float]]] = []
    for round_ in range(rounds):
        procs, _ = await bed.peers(peers, f"fr{round_}p", "--fair", "--trace-draws")
        ready = {p: first(p, "ready") for p in procs}
        master = next(p for p in procs if ready[p]["is_master"])
        client = next(p for p in procs if p is not master)
        names = {p: "m" if p is master else "c" if p is client else f"p{i}" for i, p in enumerate(procs)}
        for proc in procs:  # forget the marks of the start
            await proc.send(cmd="route")
            await proc.wait_ev("route")
            proc.events = [e for e in proc.events if e["ev"] != "route"]
        await client.send(cmd="fair", n=n, warmup=20)
        await client.wait_ev("fair", within=300)
        marks = {}
        for proc in procs:
            await proc.send(cmd="route")
            marks[names[proc]] = (await proc.wait_ev("route", within=60))["marks"]
        ids = {names[p]: ready[p]["id"] for p in procs}
        rows.append(draw_stages(marks, ids, "c", "m", skip=20))
        await bed.stop(procs)
        print(f"fair route round {round_}: {rows[-1]}", file=sys.stderr)
    return {
        kind: {
            stage: round(statistics.median(r[kind][stage] for r in rows if stage in r[kind]), 1)
            for stage in rows[0][kind]
        }
        for kind in rows[0]
    }


def cpu_seconds(proc: Proc) -> float:
    """CPU time (user + system) a peer process has used so far (Linux: /proc/<pid>/stat)."""
    fields = Path(f"/proc/{proc.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def converge(procs: list[Proc], total: int, seconds: float) -> list[dict[str, Any]]:
    """After a flood that ended short: every 5 s, what each peer holds, until all agree or time is up."""
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while True:
        for proc in procs:
            proc.events = [e for e in proc.events if e["ev"] != "final"]
            await proc.send(cmd="report", settle=0)
        finals = [await p.wait_ev("final", within=30) for p in procs]
        totals = [sum(f["state"].values()) for f in finals]
        row = {
            "at": round(time.monotonic(), 1),
            "totals": totals,
            "checksums": len({f["checksum"] for f in finals}),
            "masters": sorted({str(f["master"])[:6] for f in finals}),
            "terms": sorted({f["term"] for f in finals}),
        }
        rows.append(row)
        print(f"converge: {row}", file=sys.stderr)
        if (row["checksums"] == 1 and all(t == total for t in totals)) or time.monotonic() > deadline:
            return rows
        await anyio.sleep(5)


async def throughput(bed: Bed, n: int, count: int, window: int, *options: str, heal: float = 0) -> dict[str, Any]:
    procs, _ = await bed.peers(n, f"f{n}p", *options)
    for proc in procs:
        await proc.send(cmd="rss")
    rss = [(await p.wait_ev("rss"))["kib"] for p in procs]
    total = n * count
    cpu_before = sum(cpu_seconds(p) for p in procs)
    for proc in procs:
        await proc.send(cmd="flood", count=count, window=window, total=total)
    results = [await p.wait_ev("flood", within=60) for p in procs]
    cpu = sum(cpu_seconds(p) for p in procs) - cpu_before
    changes = max(sum(1 for e in p.events if e["ev"] == "master" and e["t"] >= results[0]["started"]) for p in procs)
    for proc in procs:
        proc.events = [e for e in proc.events if e["ev"] != "rss"]
        await proc.send(cmd="rss")
    rss_after = [(await p.wait_ev("rss"))["kib"] for p in procs]
    started = min(r["started"] for r in results)
    done = max(r["all_done"] for r in results)
    own_done = max(r["own_done"] for r in results)
    problems = []
    for r in results:
        if r["confirmed_total"] != total:
            problems.append(f"a peer holds {r['confirmed_total']} of {total}")
        if r["mine"] != count:
            problems.append(f"a peer's own count is {r['mine']}, dispatched {count}")
        if r["rejected"]:
            problems.append(f"{r['rejected']} rejected")
    if problems and heal:
        convergence = await converge(procs, total, heal)
    else:
        convergence = None
    diagnostics = sorted(  # what each peer (by its index) reported meanwhile
        {
            f"{i}: {e['kind']} {e.get('reason', '')[:120]}"
            for i, p in enumerate(procs)
            for e in p.events
            if e["ev"] == "diagnostic"
        }
    )
    await bed.stop(procs)
    return {
        "peers": n,
        "diagnostics": diagnostics,
        "dispatched": total,
        "window": window,
        "actions_per_s": round(total / (done - started)),
        "actions_per_s_own_confirmed": round(total / (own_done - started)),
        "seconds": round(done - started, 3),
        "cpu_us_per_action": round(cpu / total * 1e6),  # all peers' CPU, whatever else loads the machine
        "checksums": len({r["checksum"] for r in results}),
        "resyncs": sum(r["resyncs"] for r in results),
        "master_changes": changes,  # the most any one peer saw during the flood
        "problems": problems,
        "convergence": convergence,
        "rss_kib_idle": statistics.median(rss),
        "rss_kib_after": statistics.median(rss_after),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        bed = Bed(tg, args.profile, args.src, args.peer_log)
        if "startup" in args.only:
            results["startup_5"] = await startup(bed, args.startup_runs)
            # experiment, not a setting we ship: a 0.1 s election timeout shows the first election's share
            results["startup_5_election_0.1s"] = await startup(bed, args.startup_runs, "--election-timeout", "0.1")
        if "latency" in args.only:
            results["latency_ms"] = await latency(bed, args.samples, args.rounds)
            print(f"latency: {results['latency_ms']}", file=sys.stderr)
        if "route" in args.only:
            results["route_us"] = await route_hops(bed, args.samples, args.rounds)
            print(f"route: {results['route_us']}", file=sys.stderr)
        if "flood" in args.only:
            for n in args.flood_peers:
                runs = []
                for _ in range(args.flood_runs):
                    runs.append(await throughput(bed, n, args.count // n, args.window, heal=args.heal))
                    print(f"flood {n}: {runs[-1]}", file=sys.stderr)
                results[f"flood_{n}"] = {
                    "actions_per_s": statistics.median(r["actions_per_s"] for r in runs),
                    "cpu_us_per_action": statistics.median(r["cpu_us_per_action"] for r in runs),
                    "master_changes": [r["master_changes"] for r in runs],
                    "all_ok": all(not r["problems"] and r["checksums"] == 1 for r in runs),
                    "runs": runs,
                }
        if "signing" in args.only:
            ed25519: list[int] = []
            fake: list[int] = []
            for _ in range(args.flood_runs):
                ed25519.append((await throughput(bed, 4, args.count // 4, args.window))["actions_per_s"])
                fake.append((await throughput(bed, 4, args.count // 4, args.window, "--fake-signer"))["actions_per_s"])
                print(f"signing: ed25519 {ed25519[-1]}/s, fake signer {fake[-1]}/s", file=sys.stderr)
            results["signing_4"] = {
                "ed25519": statistics.median(ed25519),
                "fake_signer": statistics.median(fake),
                "cost_percent": round(100 * (1 - statistics.median(ed25519) / statistics.median(fake)), 1),
                "runs": {"ed25519": ed25519, "fake_signer": fake},
            }
        if "fair" in args.only and args.ab_src:
            other = Bed(tg, args.profile, args.ab_src, args.peer_log)
            for peers in args.fair_peers:
                results[f"fair_ab_{peers}"] = await fair_ab(bed, other, args.rolls, args.rounds, peers)
                print(f"fair A/B, {peers} peers: {results[f'fair_ab_{peers}']}", file=sys.stderr)
        elif "fair" in args.only:
            for peers in args.fair_peers:
                results[f"fair_{peers}"] = await fair_draws(bed, args.rolls, args.rounds, peers)
                print(f"fair, {peers} peers: {results[f'fair_{peers}']}", file=sys.stderr)
        if "fair-route" in args.only:
            for peers in args.fair_peers:
                results[f"fair_route_{peers}"] = await fair_route(bed, args.rolls, args.rounds, peers)
                print(
                    f"fair route, {peers} peers: {json.dumps(results[f'fair_route_{peers}'], indent=1)}",
                    file=sys.stderr,
                )
        if "s1" in args.only:
            results["s1"] = await under_flood(bed, 4, args.samples, args.rounds, args.floods)
            print(f"s1: {results['s1']}", file=sys.stderr)
        tg.cancel_scope.cancel()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--only", default="startup,latency,flood", help="comma-separated phases")
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1000, help="round trips per round and kind")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--count", type=int, default=16000, help="actions per flood, split across the peers")
    parser.add_argument("--flood-peers", default="4,8", help="peer counts for the flood phase")
    parser.add_argument("--flood-runs", type=int, default=3)
    parser.add_argument("--window", type=int, default=64, help="unconfirmed actions per peer")
    parser.add_argument("--rolls", type=int, default=200, help="fair: rolls of each kind per round")
    parser.add_argument(
        "--fair-peers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[4],
        help="fair: the room sizes to measure, one after the other",
    )
    parser.add_argument(
        "--heal", type=float, default=0, help="flood: after a run that ended short, watch it heal this long (s)"
    )
    parser.add_argument("--floods", type=int, default=1, help="s1: flooding processes")
    parser.add_argument("--src", default=str(ROOT / "src"), help="the movex_p2p the peers import (A/B runs)")
    parser.add_argument("--ab-src", help="fair: another movex_p2p, its rounds alternating with --src's")
    parser.add_argument(
        "--peer-log",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of the peers (stderr)",
    )
    parser.add_argument("--profile", help="directory: every peer writes cProfile stats there")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    args.flood_peers = [int(n) for n in args.flood_peers.split(",")]
    if os.environ.get(IN_NAMESPACE) != "1":
        reexec_in_namespace()
    started = time.monotonic()
    results = anyio.run(bench, args, backend="asyncio")
    results["total_s"] = round(time.monotonic() - started, 1)
    results["address"] = ADDRESS
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
