"""A stand-in for PyAV while we import aiortc: data channels never touch PyAV or FFmpeg.

``import aiortc`` imports PyAV (and with it FFmpeg's libraries, ~14 MB resident) for its audio
and video code, which a data channel never runs. While :func:`stub_av` is active, a meta-path
finder answers ``import av`` and ``import av.*`` with empty modules whose names are
placeholders; once aiortc is imported it steps aside and forgets those modules, so a game that
imports ``av`` later gets the real PyAV. Only aiortc's media classes keep the placeholders: a
game that wants aiortc's audio/video must import ``aiortc`` (or ``av``) before ``movex_p2p``'s
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

__all__ = ["StubModule", "stub_av"]

WHY = (
    "PyAV was stubbed out while movex_p2p imported aiortc (data channels do not need it); "
    "import aiortc or av before movex_p2p to use aiortc's audio and video"
)


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


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "av" or fullname.startswith("av."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is empty."""


@contextmanager
def stub_av() -> Iterator[bool]:
    """Answer ``import av*`` with stubs inside the block (yields True), unless PyAV or aiortc is
    already imported (yields False: nothing changes). Afterwards ``import av`` finds the real one."""
    if any(name in sys.modules for name in ("av", "aiortc")):
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
