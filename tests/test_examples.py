"""Every example runs as a script, exits 0 quickly and prints its key line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("name", "key_line"),
    [
        ("counter.py", "all peers agree: count=19"),
        ("chat.py", "cy left; subscribers: ['ana', 'ben']"),
        ("rps.py", "winner: A"),
    ],
)
def test_example_runs(name: str, key_line: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert key_line in result.stdout.splitlines()
    assert "Traceback" not in result.stderr
