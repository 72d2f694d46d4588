"""aiortc without PyAV (transport/avstub.py): our import skips it, a game's own import gets the real one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from movex_p2p.transport.avstub import StubModule
from netns import child_env


def run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_our_transport_imports_aiortc_without_pyav_and_a_later_import_gets_the_real_one() -> None:
    out = run(
        """
        import sys
        import movex_p2p.transport.webrtc
        print("av" in sys.modules, any(name.startswith("av.") for name in sys.modules))
        import av
        print(type(av).__name__, av.VideoFrame.__module__)
        """
    )
    # Fails without the stub: "True True" (aiortc imports PyAV).
    assert out.splitlines() == ["False False", "module av.video.frame"]


def test_aiortc_imported_first_keeps_its_real_pyav() -> None:
    out = run(
        """
        import aiortc.mediastreams
        import movex_p2p.transport.webrtc
        import av
        print(aiortc.mediastreams.AudioFrame is av.AudioFrame)
        """
    )
    assert out == "True"


def test_aiortcs_media_after_our_import_fails_clearly() -> None:
    out = run(
        """
        import movex_p2p.transport.webrtc
        import aiortc.mediastreams
        try:
            aiortc.mediastreams.AudioFrame(format="s16", layout="mono", samples=10)
        except ImportError as exc:
            print("ImportError", "import aiortc or av before movex_p2p" in str(exc))
        """
    )
    assert out == "ImportError True"


def test_a_stub_module_answers_names_with_placeholders_that_refuse_use() -> None:
    module = StubModule("av.fake")
    frame = module.VideoFrame
    assert module.VideoFrame is frame  # one placeholder per name
    with pytest.raises(ImportError, match="stubbed"):
        frame()
    with pytest.raises(ImportError, match="from_ndarray"):
        _ = frame.from_ndarray  # type: ignore[attr-defined]
    assert issubclass(module.FFmpegError, Exception)  # usable in an except clause
    with pytest.raises(AttributeError):
        _ = module.__file__
