"""Predictor: a peer's optimistic views, ``confirmed + own unrevealed private actions + own pending actions`` (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ActionRejected, InvalidState, LocalProtocolError
from ..ids import Rid
from .overlay import PrivateOverlay
from .pending import Pending
from .replica import Replica
from .state import freeze
from .types import Action, ResourceType, TransformContext

__all__ = ["Predictor"]


class Predictor:
    """The predicted view of each resource (cached until a change) over ``overlay``'s own secrets."""

    def __init__(self, overlay: PrivateOverlay) -> None:
        self.views: dict[Rid, Any] = {}
        self.overlay = overlay
        self.fault: Exception | None = None
        """What the app's reducer raised in the last :meth:`predict` (None if nothing)."""

    def view(self, rid: Rid, res: Replica | None, pending: Iterable[Pending]) -> Any:
        """The untransformed predicted view of ``rid`` (frozen), on replica ``res`` with ``pending`` on top."""
        view = self.views.get(rid)
        if view is None:
            view = self.views[rid] = self._compute(rid, res, pending)
        return view

    @staticmethod
    def transformed(rid: Rid, view: Any, type_: ResourceType, master_now: float) -> Any:
        """``transform(view, master clock)`` when the type has one."""
        transform = type_.transform
        if transform is None:
            return view
        try:  # the app's hook, on whatever state the room holds: its failure is the app's to see
            return freeze(transform(view, TransformContext(now=master_now)))
        except Exception as exc:
            raise InvalidState(f"{rid}: the type's transform raised {exc!r} on this state") from exc

    def forget(self, rid: Rid) -> None:
        """``rid`` was removed."""
        self.views.pop(rid, None)
        self.overlay.secrets.pop(rid, None)

    def _compute(self, rid: Rid, res: Replica | None, pending: Iterable[Pending]) -> Any:
        if res is None:
            raise LocalProtocolError(f"{rid} is not here")
        view = res.state
        type_ = res.type
        for _, private, _, _ in self.overlay.secrets.get(rid, ()):
            view = _try(type_, view, private)
        for item in pending:
            if item.waits:
                continue
            if item.index is None:  # else its public half is in the confirmed state already
                view = _try(type_, view, item.action)
            if item.private is not None:
                view = _try(type_, view, item.private)
        return view

    def predict(self, rid: Rid, res: Replica, action: Action, private: Action | None) -> Any:
        """The view once ``action`` (and ``private``) is applied, if the view is cached (else None).

        A reducer that raises is left to the master (it may see another state; the view leaves
        the action out; :attr:`fault` keeps what it raised, for the handle's error to chain to),
        but one that breaks its contract (returns None or data that is not JSON-like, or changes
        its input) raises ActionRejected here, at the dispatch: that is a bug of the app, and
        nothing is sent.
        """
        cached = self.views.get(rid)
        state = res.state if cached is None else cached
        self.fault = None
        for part in (action, private):
            if part is None:
                continue
            try:
                result = res.type.reducer(state, part)
            except InvalidState as exc:  # it changed its input (a frozen state refuses): the app's bug
                raise ActionRejected(str(exc), rid=rid) from None
            except Exception as exc:  # the app's reducer: the master runs it too, and its rejection says why
                self.fault = exc  # the handle's error is chained to it: the app sees where its reducer raised
                continue
            try:
                state = res.type.checked(state, result, part)
            except InvalidState as exc:
                raise ActionRejected(str(exc), rid=rid) from None
        return None if cached is None else state


def _try(type_: ResourceType, state: Any, action: Action) -> Any:
    """Predict one step; an action the master will reject leaves the view unchanged."""
    try:
        result = type_.reducer(state, action)
    except Exception:  # the app's reducer: the master runs it too, and its rejection says why
        return state
    try:
        return type_.checked(state, result, action)
    except InvalidState:  # the app's result breaks the contract: the master refuses it too
        return state
