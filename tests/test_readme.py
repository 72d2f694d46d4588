"""The README's example runs and prints what it says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs_and_peers_agree() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 25
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'count': 2} {'count': 2} True"


def test_readme_commands_are_the_ci_commands() -> None:
    text = README.read_text()
    commands = re.findall(r"```sh\n(.*?)\n```", text, flags=re.S)
    assert len(commands) == 2
    ci = (README.parent / ".ci" / "run").read_text()
    assert "pip install -q -e '.[test]'" in ci
    assert ".venv/bin/pytest" in ci
    assert "movex-p2p demo" in commands[0]
    assert "pytest" in commands[1]
