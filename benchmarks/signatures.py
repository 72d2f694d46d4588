"""Ed25519 as a peer signs and verifies (libsodium, PyNaCl's build) against cryptography's (OpenSSL).

Run: python benchmarks/signatures.py [--rounds 7] [--n 3000]

Both sign and verify the same 150-byte statement (about an endorsement's size) with the same
key, alternating by round so both see the same machine load; the figure is each one's median
of the rounds' per-call means, in microseconds, and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from movex_p2p.identity import Identity, verify


def per_call(fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=3000, help="calls per round and kind")
    args = parser.parse_args()
    seed = bytes(range(32))
    ours = Identity(seed)
    theirs = Ed25519PrivateKey.from_private_bytes(seed)
    public = theirs.public_key()
    data = bytes(150)
    signature = ours.sign(data)
    assert signature == theirs.sign(data)
    kinds = ("sign libsodium", "sign OpenSSL", "verify libsodium", "verify OpenSSL")
    rows: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        rows["sign libsodium"].append(per_call(lambda: ours.sign(data), args.n))
        rows["sign OpenSSL"].append(per_call(lambda: theirs.sign(data), args.n))
        rows["verify libsodium"].append(per_call(lambda: verify(ours.public_key, signature, data), args.n))
        rows["verify OpenSSL"].append(per_call(lambda: public.verify(signature, data), args.n))
    medians = {k: statistics.median(v) for k, v in rows.items()}
    for kind, value in medians.items():
        print(f"{kind:18} {value:7.1f} us")
    for op in ("sign", "verify"):
        print(f"{op}: OpenSSL / libsodium = {medians[f'{op} OpenSSL'] / medians[f'{op} libsodium']:.2f}x")


if __name__ == "__main__":
    main()
