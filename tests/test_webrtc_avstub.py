"""aiortc without PyAV and aioice.mdns (transport/avstub.py): our import skips them, a game's own gets the real ones."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from movex_p2p.errors import RemoteProtocolError
from movex_p2p.testing.netns import child_env
from movex_p2p.transport.avstub import StubModule
from movex_p2p.transport.webrtc import check_host_only


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
        print("av" in sys.modules, any(name.startswith("av.") for name in sys.modules), "dns" in sys.modules)
        import av
        import aioice.mdns
        print(type(av).__name__, av.VideoFrame.__module__, aioice.mdns.MDnsProtocol.__module__)
        """
    )
    # Fails without the stub: "True True True" (aiortc imports PyAV, aioice imports dnspython).
    assert out.splitlines() == ["False False False", "module av.video.frame aioice.mdns"]


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


def test_an_sdp_with_an_mdns_candidate_is_refused_before_aioice_would_resolve_it() -> None:
    sdp = "a=candidate:1 1 udp 2130706431 3f1c0e8a-7d1b-4a5e.local 5000 typ host\r\n"
    with pytest.raises(RemoteProtocolError, match="not IP addresses"):
        check_host_only(sdp)
    check_host_only(sdp.replace("3f1c0e8a-7d1b-4a5e.local", "10.99.0.2"))


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
