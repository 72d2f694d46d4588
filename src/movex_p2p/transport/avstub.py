"""Stand-ins for PyAV and aioice's mDNS resolver while we import aiortc: our links never use them.

``import aiortc`` imports PyAV (and with it FFmpeg's libraries, ~14 MB resident) for its audio
and video code, which a data channel never runs; ``aioice`` imports ``aioice.mdns`` and with it
dnspython (~5 MB) to resolve ``.local`` candidates, which our peers never send (their SDP is
refused: :func:`~movex_p2p.transport.webrtc.check_host_only`). While :func:`stub_av` is
active, a meta-path finder answers ``import av``, ``import av.*`` and ``import aioice.mdns``
with empty modules whose names are placeholders; once aiortc is imported it steps aside and
forgets those modules, so a game that imports ``av`` or ``aioice.mdns`` later gets the real
one. Only aiortc's media classes and aioice's ``.local`` resolution keep the placeholders: a
game that wants them must import ``aiortc`` (or ``av``, ``aioice``) before ``movex_p2p``'s
transport, and then nothing is stubbed. Using a placeholder raises ImportError saying so.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

__all__ = ["PROVIDED", "STUBBED", "WHY", "StubModule", "stub_av"]

WHY = (
    "PyAV and aioice.mdns were stubbed out while movex_p2p imported aiortc (data channels do not need "
    "them); import aiortc or av before movex_p2p to use aiortc's audio and video or mDNS candidates"
)
STUBBED: tuple[str, ...] = ("av", "aioice.mdns")
"""Modules (and their submodules) answered with stubs while aiortc is imported."""


def _refuse(*_: Any, **__: Any) -> NoReturn:
    raise ImportError(WHY)


class _Placeholder(type):
    """The metaclass of a stub class: creating one, or reaching for anything on it, raises ImportError."""

    __call__ = _refuse

    def __getattr__(cls, name: str) -> NoReturn:
        raise ImportError(f"{cls.__name__}.{name}: {WHY}")


class StubModule(types.ModuleType):
    """An empty ``av`` module (or submodule): every public name is a placeholder class."""

    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        # Error classes stay exceptions: aiortc names them in except clauses.
        made: type = (
            type(name, (Exception,), {})
            if name.endswith("Error")
            else _Placeholder(name, (), {"__module__": self.__name__})
        )
        setattr(self, name, made)
        return made


def _is_mdns_hostname(name: str) -> bool:
    """aioice asks this of every remote candidate: a ``.local`` name would need the resolver."""
    return name.endswith(".local")


PROVIDED: dict[str, dict[str, Any]] = {"aioice.mdns": {"is_mdns_hostname": _is_mdns_hostname}}
"""What a stub module really implements: the functions that are called whether mDNS is used or not."""


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == name or fullname.startswith(name + ".") for name in STUBBED):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is empty but for :data:`PROVIDED`."""
        for name, value in PROVIDED.get(module.__name__, {}).items():
            setattr(module, name, value)


@contextmanager
def stub_av() -> Iterator[bool]:
    """Answer the imports of :data:`STUBBED` with stubs inside the block (yields True), unless
    PyAV, aioice or aiortc is already imported (yields False: nothing changes). Afterwards those
    imports find the real modules."""
    if any(name in sys.modules for name in ("av", "aioice", "aiortc")):
        yield False
        return
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield True
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name, module in sys.modules.items() if isinstance(module, StubModule)]:
            del sys.modules[name]
