"""Every python snippet of README.md and docs/*.md runs (each in a fresh interpreter).

A snippet runs as a whole program unless the line just before its fence says otherwise:

- ``<!-- docs-test: in-peer -->``: a fragment, run inside ``async with mx.Peer(...) as peer`` on an
  in-process network, after ``counter`` and ``Counter`` are defined (see :data:`IN_PEER`);
- ``<!-- docs-test: netns -->``: it uses the LAN, so it runs inside a private network namespace
  with two veth interfaces (never on a real network); ``netns pygame`` also makes pygame headless
  and closes its window after a few frames;
- ``<!-- docs-test: partial (why) -->``: deliberately not a program (addresses of your own LAN...):
  compiled only;
- ``<!-- docs-test: complete -->``: the default, said out loud.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from movex_p2p.testing.netns import SETUP, unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?:<!-- docs-test: (?P<mode>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)

IN_PEER = """\
import anyio
import movex_p2p as mx

def counter(state, action):
    match action:
        case mx.Action("increment"):
            return {**state, "count": state["count"] + 1}
    return state

Counter = mx.ResourceType("counter", counter, initial={"count": 0})
_TYPES = [Counter]  # the snippet may define Counter again (equal): that one is a local of main

async def main():
    async with mx.Peer(room="docs", types=_TYPES, transport=mx.LocalNetwork()) as peer:
        await peer.wait_ready()
%s

anyio.run(main)
"""

PYGAME_FRAMES = """\
import os
os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
import pygame as _pygame

_get, _frames = _pygame.event.get, [0]

def _quit_after_a_while(*args, **kwargs):  # the test closes the window after 60 frames
    _frames[0] += 1
    events = _get(*args, **kwargs)
    return [*events, _pygame.event.Event(_pygame.QUIT)] if _frames[0] >= 60 else events

_pygame.event.get = _quit_after_a_while
"""

VETH = (
    "ip link add v0 type veth peer name v1 && ip addr add 10.99.0.1/24 dev v0 && ip addr add 10.99.0.2/24 dev v1 "
    "&& ip link set v0 up multicast on && ip link set v1 up multicast on"
)
"""Two non-loopback interfaces, so the default ``LanTransport()`` (and ``browse_rooms()``) find some."""


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    mode: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def snippets() -> list[Snippet]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            found.append(Snippet(path, line, (match.group("mode") or "complete").strip(), match.group("code")))
    return found


SNIPPETS = snippets()


def test_every_doc_has_its_snippets_found_and_every_mode_is_known() -> None:
    assert len(SNIPPETS) >= 10
    for snippet in SNIPPETS:
        kind = snippet.mode.split()[0]
        assert kind in {"complete", "in-peer", "netns", "partial"}, snippet.id
        if kind == "partial":
            assert re.fullmatch(r"partial \(.+\)", snippet.mode), f"{snippet.id}: say why it is partial"


def program(snippet: Snippet) -> str:
    if snippet.mode == "in-peer":
        return IN_PEER % textwrap.indent(snippet.code, " " * 8)
    if snippet.mode == "netns pygame":
        return PYGAME_FRAMES + snippet.code
    return snippet.code


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.id)
def test_snippet_runs(snippet: Snippet) -> None:
    code = program(snippet)
    compile(code, snippet.id, "exec")
    if snippet.mode.startswith("partial"):
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-c", code]
    if snippet.mode.startswith("netns"):
        if snippet.mode == "netns pygame":
            pytest.importorskip("pygame")
        reason = unavailable_reason()
        if reason is not None:
            pytest.skip(f"network namespaces unavailable: {reason}")
        argv = ["unshare", "-rn", "sh", "-c", f'{SETUP} && {VETH} && exec "$0" "$@"', *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env, check=False, cwd=ROOT)
    assert done.returncode == 0, f"{snippet.id}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stderr, done.stderr


def test_no_machine_specific_paths_in_docs_or_benchmarks() -> None:
    texts = [*DOCS, ROOT / "benchmarks" / "README.md", *sorted((ROOT / "benchmarks").glob("*.py"))]
    for path in texts:
        for marker in ("/work/", "/root/", "/home/", "/Users/"):
            assert marker not in path.read_text(), f"{path.name} names {marker}"


def test_the_readme_runs_the_pygame_example_with_its_extra() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pygame_game.py" in readme
    assert "'.[pygame]'" in readme


def _build_api(out: Path, *modules: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath or ROOT / "src")}
    argv = [sys.executable, str(ROOT / "tests" / "build_api.py"), str(out), *modules]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False, cwd=ROOT)


def test_the_api_reference_builds_from_the_docstrings(tmp_path: Path) -> None:
    """pdoc renders the public modules with no warning; the names users ask about are documented."""
    done = _build_api(tmp_path)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "movex_p2p.html").read_text()
    for anchor in ("Peer.close", "Peer.id", "Resource.updates", "Resource.on_update", "LanTransport"):
        assert f'id="{anchor}"' in page, anchor
    assert "not thread-safe" in page
    embed = (tmp_path / "movex_p2p" / "embed.html").read_text()
    assert 'id="EmbeddedPeer.name"' in embed


def test_the_api_reference_fails_on_a_broken_docstring(tmp_path: Path) -> None:
    package = tmp_path / "src" / "broken"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        '"""A package with mistakes."""\n\n__all__ = ["Thing", "gone"]\n\n\n'
        'class Thing:\n    """See :meth:`nowhere`."""\n\n    def undocumented(self) -> None:\n        pass\n'
    )
    done = _build_api(tmp_path / "out", "broken", pythonpath=tmp_path / "src")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "pdoc: Found 'gone' in broken.__all__, but it does not resolve: Error importing broken.gone",
        "broken.Thing: the reference 'nowhere' names nothing",
        "broken.Thing.undocumented: no docstring",
    ]
