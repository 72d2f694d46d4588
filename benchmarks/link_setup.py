"""Link setup at random loss, in one process, no socket: aiortc's DTLS handshake and SCTP association.

aiortc's real transports run over the in-memory lower layers of tests/test_webrtc_setup.py,
which drop each datagram with probability ``--loss`` (seeded). Many handshakes run at once in
one event loop (``--concurrency`` at once), with and without our workarounds, in the same run:

- dtls: seconds until both ends of a DTLS handshake are connected, aiortc as shipped against
  :func:`~movex_p2p.transport.webrtc.copy_handshake_flights` (p50, p90, max);
- sctp: associations that never open (T1 gave up) and seconds to open, aiortc as shipped against
  :func:`~movex_p2p.transport.webrtc.init_with_tag_zero`, and against both that and
  :func:`~movex_p2p.transport.webrtc.backoff_init_timer` (T1 from 0.1 s, doubling); all with our
  LAN timers (:data:`~movex_p2p.transport.webrtc.LAN_RTO`: else T1 every 0.5 s).

    python benchmarks/link_setup.py --loss 0.19 --pairs 200
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

import anyio
from aiortc import RTCCertificate, RTCDtlsParameters, RTCDtlsTransport
from aiortc.rtcsctptransport import RTCSctpTransport

from movex_p2p.testing.fake_rtc import FakeDtls, FakeIce
from movex_p2p.transport.webrtc import backoff_init_timer, copy_handshake_flights, init_with_tag_zero, use_lan_timers

SCTP_ROWS = {"stock": "aiortc as shipped", "tag": "INIT tag 0", "tag+t1": "INIT tag 0, T1 backoff"}


def lossy(rng: random.Random, loss: float) -> Any:
    return lambda _sender, _data: rng.random() < loss


async def one_dtls(rng: random.Random, loss: float, copies: bool, certs: list[Any], within: float) -> float:
    drop = lossy(rng, loss)
    ices = [FakeIce("client", "controlled", drop), FakeIce("server", "controlling", drop)]
    ices[0].peer, ices[1].peer = ices[1], ices[0]
    ends: list[Any] = [RTCDtlsTransport(ice, [cert]) for ice, cert in zip(ices, certs, strict=True)]  # type: ignore[arg-type]
    helpers = [copy_handshake_flights(end) for end in ends] if copies else []
    started = time.monotonic()
    took = float("inf")
    with anyio.move_on_after(within):
        async with anyio.create_task_group() as tg:
            for end, other in ((ends[0], certs[1]), (ends[1], certs[0])):
                tg.start_soon(end.start, RTCDtlsParameters(fingerprints=other.getFingerprints()))
        if all(end.state == "connected" for end in ends):
            took = time.monotonic() - started
    for helper in helpers:
        if helper is not None:
            helper.close()
    for end in ends:
        await end.stop()
    return took


async def one_sctp(rng: random.Random, loss: float, fixes: str) -> float:
    drop = lossy(rng, loss)
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        a, b = FakeDtls("a", "client", tg, drop), FakeDtls("b", "server", tg, drop)
        a.peer, b.peer = b, a
        ends: list[Any] = [RTCSctpTransport(a), RTCSctpTransport(b)]  # type: ignore[arg-type]
        for sctp in ends:
            assert use_lan_timers(sctp)
            if fixes != "stock":
                assert init_with_tag_zero(sctp)
            if fixes == "tag+t1":
                assert backoff_init_timer(sctp)
        for sctp in ends:
            tg.start_soon(sctp.start, None, 5000)
        while not all(s.state in ("connected", "closed") for s in ends):  # noqa: ASYNC110
            await anyio.sleep(0.01)
        took = time.monotonic() - started if all(s.state == "connected" for s in ends) else float("inf")
        for sctp in ends:
            sctp._t1_cancel()
            sctp._t3_cancel()
            sctp._set_state(sctp.State.CLOSED)
        tg.cancel_scope.cancel()
    return took


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)  # a link that never opened counts as infinitely slow
    never = sum(1 for x in ordered if x == float("inf"))

    def ms(x: float) -> str:
        return "never" if x == float("inf") else f"{x * 1000:.0f} ms"

    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    spread = f"p50 {ms(statistics.median(ordered))}, p90 {ms(p90)}, max {ms(ordered[-1])}"
    return f"{spread}, never opened {never}/{len(ordered)}"


async def main(args: argparse.Namespace) -> None:
    certs = [RTCCertificate.generateCertificate() for _ in range(2)]
    limiter = anyio.CapacityLimiter(args.concurrency)  # a handshake costs CPU: keep the loop from queueing
    print(f"loss {args.loss:.0%} each way, {args.pairs} pairs per row, seed {args.seed}")
    for copies in (False, True) if args.only != "sctp" else ():
        rng = random.Random(args.seed)
        results: list[float] = []
        async with anyio.create_task_group() as tg:

            async def run(results: list[float] = results, rng: random.Random = rng, copies: bool = copies) -> None:
                async with limiter:
                    results.append(await one_dtls(rng, args.loss, copies, certs, args.within))

            for _ in range(args.pairs):
                tg.start_soon(run)
        print(f"| dtls | {'copies x3' if copies else 'aiortc as shipped'} | {summary(results)} |", flush=True)
    for fixes, row in SCTP_ROWS.items() if args.only != "dtls" else ():
        rng = random.Random(args.seed)
        results = []
        async with anyio.create_task_group() as tg:

            async def run_sctp(results: list[float] = results, rng: random.Random = rng, fixes: str = fixes) -> None:
                async with limiter:
                    results.append(await one_sctp(rng, args.loss, fixes))

            for _ in range(args.pairs):
                tg.start_soon(run_sctp)
        print(f"| sctp | {row} | {summary(results)} |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--loss", type=float, default=0.19, help="probability that a datagram is lost")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="handshakes at once")
    parser.add_argument("--only", choices=["dtls", "sctp"], default=None)
    parser.add_argument("--within", type=float, default=30.0, help="seconds a DTLS handshake may take")
    asyncio.run(main(parser.parse_args()))
