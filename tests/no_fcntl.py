"""Run a module with ``fcntl`` unavailable, as on Windows: ``python -m tests.no_fcntl MODULE ARGS...``.

``sys.modules["fcntl"] = None`` makes every later ``import fcntl`` fail, so the whole stack
(standard library, aiortc, zeroconf, movex_p2p) is imported and run without it.
"""

from __future__ import annotations

import runpy
import sys

if __name__ == "__main__":
    if "fcntl" in sys.modules:
        raise SystemExit("fcntl was imported before this wrapper ran")
    sys.modules["fcntl"] = None  # type: ignore[assignment]
    module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
