"""Requests: a peer's own requests to the master (create, bind, remove, report) and the presence it keeps (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..ids import PeerId, Rid, Term
from .effects import Effect, Send
from .messages import Bind, Create, Remove, Report, ResourceMessage

__all__ = ["Request", "Requests", "to_master"]

Request = Create | Bind | Report | Remove


def to_master(master: PeerId | None, message: ResourceMessage) -> list[Effect]:
    """Send ``message`` to ``master`` if one is known (else it is re-sent when one is)."""
    if master is None:
        return []
    return [Send(to=master, message=message)]


class Requests:
    """Own requests awaiting the master's reply, by number, and the resources this peer is bound to."""

    def __init__(self) -> None:
        self.open: dict[int, Request] = {}
        self.bound: dict[Rid, dict[str, Any]] = {}
        self.req = 0

    def next(self) -> int:
        """A fresh request number."""
        self.req += 1
        return self.req

    def ask(self, message: Request, master: PeerId | None) -> list[Effect]:
        """Send ``message`` and keep it until the master replies."""
        self.open[message.req] = message
        return to_master(master, message)

    def replay(self, master: PeerId, term: Term, skip: int) -> list[Effect]:
        """To a new master: every open request but ``skip`` (in ``term``), and a Bind per bound resource not asked."""
        effects: list[Effect] = [
            Send(to=master, message=replace(request, term=term))
            for req, request in sorted(self.open.items())
            if req != skip
        ]
        asked = {r.rid for r in self.open.values() if isinstance(r, Bind)}
        for rid, info in self.bound.items():  # keep presence across master changes and reconnects
            if rid not in asked:
                effects.append(Send(to=master, message=Bind(term=term, req=self.next(), rid=rid, info=info)))
        return effects
