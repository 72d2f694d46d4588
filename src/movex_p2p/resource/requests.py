"""Requests: a peer's own requests to the master (create, bind, remove, report) and the presence it keeps (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from ..ids import PeerId, Rid, Term
from .effects import Effect, Send
from .messages import Bind, Create, Remove, Report, ResourceMessage

__all__ = ["REPORT_AGAIN", "Request", "Requests", "to_master"]

REPORT_AGAIN: Final = 5.0
"""Seconds without a reply after which a report is sent again (a frame lost on a link whose
break one side never saw: the master saw this peer go and come back, this peer saw nothing)."""

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
        self._report: tuple[int, float] | None = None  # the open report: its number, when it was sent

    def next(self) -> int:
        """A fresh request number."""
        self.req += 1
        return self.req

    def report(self, report: Report, now: float) -> None:
        """Keep ``report`` until the master replies; it supersedes any report before it."""
        if self._report is not None:
            self.open.pop(self._report[0], None)
        self.open[report.req] = report
        self._report = (report.req, now)

    def report_due(self) -> float | None:
        """When the open report is sent again if no reply comes (None: no report open)."""
        return None if self._report is None else self._report[1] + REPORT_AGAIN

    def answered(self, req: int) -> Request | None:
        """The master replied to request ``req``: the request (None if it is not open)."""
        if self._report is not None and self._report[0] == req:
            self._report = None
        return self.open.pop(req, None)

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
