"""Shared pytest configuration."""

from __future__ import annotations

# --- LAN transport (tests/netns.py, tests/test_lan_*.py) -------------------------------------
# The real-stack tests import ``netns`` and run ``python -m tests.lan_peer`` in a namespace:
# make tests/, the repository root and src/ (when the package is not installed) importable.
import sys as _sys
from pathlib import Path as _Path

_ROOT = _Path(__file__).resolve().parent.parent
for _path in (_ROOT / "src", _ROOT, _ROOT / "tests"):
    if str(_path) not in _sys.path:
        _sys.path.insert(0, str(_path))
