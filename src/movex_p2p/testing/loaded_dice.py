"""examples/liars_dice.py with test instruments, and a master running modified code (tests only).

    python -m movex_p2p.testing.loaded_dice --record FILE [--load ATTACK] GAME_ARGS...

Never imported by the library; :func:`movex_p2p.testing.liars_dice_bed.loaded_run` starts it inside
a private network namespace. It runs the example (``main(GAME_ARGS)``) with two changes:

- ``--record FILE``: every frame the peer receives or sends (after DTLS, as the node sees it) is
  written to FILE, one JSON line each: ``{"t": time.monotonic(), "dir": "in"|"out", "peer", "hex"}``
  (the frame's bytes as sent: for ``out`` after any rewriting below); and each of its own rolls
  prints ``rolled R: D D`` (the dice its view holds at the roll's confirmation).
- ``--load ATTACK``: *modified code*, a dishonest peer. Every frame it sends on the reliable lane is
  decoded and rewritten (as master it is the only sender of draws and reveals): ``reveal``: each
  opening in its ``Revealed`` shows sixes and names a zero beacon; ``draw``: each ``Drawn`` carries
  a forged element in place of the first contribution's; ``omit``: each ``Drawn`` leaves out every
  contribution but the first (naming the others missing, as the protocol allows: a visible drop
  aiming at other dice). It prints ``tampered N`` after each rewrite (N so far).
- ``--election-timeout S``: the peer's ``ElectionConfig(election_timeout=S)``: a joiner that waits
  longer for the room's master before it campaigns (on one loopback address discovery may take
  ~1 s), so the process that opened the room stays its first master.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import replace
from types import TracebackType
from typing import IO, Any, Final

import movex_p2p

from .. import wire
from ..election.machine import ElectionConfig
from ..ids import PeerId
from ..resource import messages as rm
from ..resource.types import Action
from ..transport.base import Frame, TransportEvent
from ..transport.lan import LanEndpoint, LanTransport
from .netns import example

__all__ = ["ATTACKS", "Tap", "main"]

ATTACKS: Final = ("reveal", "draw", "omit")


def say(line: str) -> None:
    """One line on stdout, beside the game's own screen (the test bed reads both)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Tap:
    """What passes through one endpoint: recorded to ``out`` and, with ``attack``, rewritten on its way out."""

    def __init__(self, out: IO[str], attack: str | None) -> None:
        self.out = out
        self.attack = attack
        self.tampered = 0

    def record(self, direction: str, peer: PeerId, data: bytes) -> None:
        line = {"t": time.monotonic(), "dir": direction, "peer": peer, "hex": data.hex()}
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()

    def outgoing(self, data: bytes) -> bytes:
        if self.attack is None:
            return data
        messages = wire.decode(data)
        loaded = [self.load(m) for m in messages]
        if all(a is b for a, b in zip(loaded, messages, strict=True)):
            return data
        self.tampered += sum(a is not b for a, b in zip(loaded, messages, strict=True))
        say(f"tampered {self.tampered}")
        return wire.encode_many(loaded) if len(loaded) > 1 else wire.encode(loaded[0])

    def load(self, message: wire.Message) -> wire.Message:
        """``message`` as the dishonest master sends it."""
        if isinstance(message, rm.Revealed) and self.attack == "reveal" and message.actions:
            return replace(message, actions=tuple(self._sixes(h) for h in message.actions))
        if isinstance(message, rm.Drawn) and message.contributions:
            if self.attack == "draw":
                forged = replace(message.contributions[0], element=bytes(32))
                return replace(message, contributions=(forged, *message.contributions[1:]))
            if self.attack == "omit" and len(message.contributions) > 1:
                left_out = tuple(c.peer for c in message.contributions[1:])
                return replace(message, contributions=message.contributions[:1], missing=message.missing + left_out)
        return message

    @staticmethod
    def _sixes(held: rm.Held) -> rm.Held:
        if held.action is None or not isinstance(held.action.payload, dict):
            return replace(held, beacon=bytes(32))
        dice = held.action.payload.get("dice")
        sixes = [6] * len(dice) if isinstance(dice, list) else dice
        return replace(held, action=Action(held.action.type, {**held.action.payload, "dice": sixes}), beacon=bytes(32))


class TappedEndpoint:
    """A LanEndpoint whose frames pass through a :class:`Tap` (everything else is the endpoint's)."""

    def __init__(self, inner: LanEndpoint, tap: Tap) -> None:
        self._inner = inner
        self._tap = tap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send(self, peer: PeerId, data: bytes) -> None:
        data = self._tap.outgoing(data)
        self._tap.record("out", peer, data)
        self._inner.send(peer, data)

    def send_datagram(self, peer: PeerId, data: bytes) -> None:
        self._tap.record("out", peer, data)
        self._inner.send_datagram(peer, data)

    def _seen(self, event: TransportEvent) -> TransportEvent:
        if isinstance(event, Frame):
            self._tap.record("in", event.peer, event.data)
        return event

    async def receive(self) -> TransportEvent:
        return self._seen(await self._inner.receive())

    def receive_nowait(self) -> TransportEvent:
        return self._seen(self._inner.receive_nowait())


class TappedConnection:
    """``LanTransport.connect``'s context, entered as a :class:`TappedEndpoint`."""

    def __init__(self, inner: LanEndpoint, tap: Tap) -> None:
        self._inner = inner
        self._tap = tap

    async def __aenter__(self) -> TappedEndpoint:
        return TappedEndpoint(await self._inner.__aenter__(), self._tap)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._inner.__aexit__(kind, exc, tb)


def tapped_transport(tap: Tap) -> type[LanTransport]:
    """A LanTransport class whose endpoints pass their frames through ``tap``."""

    class TappedTransport(LanTransport):
        def connect(self, **kwargs: Any) -> Any:  # the same keywords as LanTransport.connect
            return TappedConnection(super().connect(**kwargs), tap)

    return TappedTransport


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m movex_p2p.testing.loaded_dice", allow_abbrev=False)
    parser.add_argument("--record", required=True, help="write every frame in and out to this file")
    parser.add_argument("--load", choices=ATTACKS, default=None, help="tests only: rewrite what this peer sends")
    parser.add_argument("--election-timeout", type=float, default=None, help="seconds (default: the library's)")
    args, game = parser.parse_known_args()  # the rest: examples/liars_dice.py's arguments
    ld = example("liars_dice")
    roll = ld.Seat.roll

    async def roll_and_say(seat: Any) -> None:
        round_ = seat.table.state["round"]
        await roll(seat)
        say(f"rolled {round_}: {' '.join(map(str, seat.dice))}")

    with open(args.record, "w", encoding="utf-8") as out:
        ld.Seat.roll = roll_and_say
        movex_p2p.LanTransport = tapped_transport(Tap(out, args.load))  # type: ignore[misc]
        if args.election_timeout is not None:
            timeout = args.election_timeout
            movex_p2p.Peer = functools.partial(  # type: ignore[misc,assignment]
                movex_p2p.Peer, election=ElectionConfig(election_timeout=timeout)
            )
        sys.exit(ld.main(game))


if __name__ == "__main__":
    main()
