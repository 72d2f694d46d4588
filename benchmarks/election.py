"""Failover and first-election times of the election alone, in the virtual-time harness.

Run: python benchmarks/election.py            (a few seconds; --seeds N for more or fewer runs)
     python benchmarks/election.py --ed25519  (real Ed25519 keys instead of the fast fake signer)

Each run starts a room (election.sim.Cluster: 1-5 ms links, every election message a datagram),
waits for its first master, kills the master at a random point of a heartbeat period and
measures the time until every live peer knows the new master: once with the death reported to
the survivors as a link going down at once (``LinksChanged``), once never reported (only the
missing heartbeats tell).
"""

from __future__ import annotations

import argparse
import random
import statistics

from movex_p2p.election.machine import ElectionConfig, Policy
from movex_p2p.election.sim import Cluster


def settled(c: Cluster) -> bool:
    masters = c.masters()
    return len(masters) == 1 and all(m == masters[0] for m in c.known_masters().values())


def run(policy: Policy, size: int, seed: int, *, reported: bool, ed25519: bool = False) -> tuple[float, float]:
    """(first election, failover) in seconds of virtual time."""
    rng = random.Random(seed)
    c = Cluster(
        size,
        config=ElectionConfig(policy=policy),
        rng=rng,
        delay=(0.001, 0.005),
        down_delay=0.0 if reported else None,
        ed25519=ed25519,
    )
    assert c.run_until(5.0, until=settled)
    first = c.now
    c.run(1.0 + rng.uniform(0.0, 0.1))
    c.kill(c.masters()[0])
    killed = c.now
    assert c.run_until(killed + 10.0, until=settled), "no new master"
    return first, c.now - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--ed25519", action="store_true", help="real Ed25519 keys (the protocol is the same)")
    args = parser.parse_args()
    print(f"virtual seconds over {args.seeds} seeds{', ed25519' if args.ed25519 else ''}: mean / max")
    print(f"{'policy, peers':18} {'first election':>16} {'death reported':>16} {'never reported':>16}")
    for policy, sizes in ((Policy.AVAILABLE, (2, 3, 5)), (Policy.MAJORITY, (3, 5))):
        for size in sizes:
            reported = [run(policy, size, seed, reported=True, ed25519=args.ed25519) for seed in range(args.seeds)]
            silent = [run(policy, size, seed, reported=False, ed25519=args.ed25519)[1] for seed in range(args.seeds)]
            firsts = [first for first, _ in reported]
            cells = [
                f"{statistics.mean(values):.2f} / {max(values):.2f}"
                for values in (firsts, [failover for _, failover in reported], silent)
            ]
            print(f"{policy.value + ' ' + str(size):18} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}")


if __name__ == "__main__":
    main()
