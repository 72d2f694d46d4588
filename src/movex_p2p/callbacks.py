"""The one callback registry of the public API (``on_master_changed``, ``on_update``, ...)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, ParamSpec

__all__ = ["Callbacks"]

P = ParamSpec("P")


class Callbacks(Generic[P]):
    """Callbacks of one kind: ``add`` returns an unsubscribe function; calling the registry calls them all.

    With a ``log``, a callback that raises is logged there and the others still run (callbacks
    on the network's loop must not break it); without one, the exception propagates (callbacks
    run on the app's own thread, e.g. in ``EmbeddedPeer.poll_events``).
    """

    __slots__ = ("_log", "_name", "registered")

    def __init__(self, name: str, *, log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self._name = name
        self._log = log
        self.registered: list[Callable[P, None]] = []
        """The callbacks, in the order they were added (read it; change it with add and unsubscribe)."""

    def add(self, callback: Callable[P, None]) -> Callable[[], None]:
        """Register ``callback``; the returned function unregisters it (calling it twice is harmless)."""
        self.registered.append(callback)

        def unsubscribe() -> None:
            if callback in self.registered:
                self.registered.remove(callback)

        return unsubscribe

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in list(self.registered):
            if self._log is None:
                callback(*args, **kwargs)
                continue
            try:
                callback(*args, **kwargs)
            except Exception:
                self._log.exception("%s callback raised", self._name)
