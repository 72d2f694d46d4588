"""The public surface: ``__all__`` complete, sorted, importable."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import movex_p2p
import movex_p2p.testing


def test_all_is_sorted_and_unique() -> None:
    names = list(movex_p2p.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_all_lists_every_public_attribute() -> None:
    public = {
        name
        for name, value in vars(movex_p2p).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in {"annotations", "TYPE_CHECKING", "Any"}
    }
    assert public - set(movex_p2p.__all__) == set()


@pytest.mark.parametrize("name", movex_p2p.__all__)
def test_every_name_imports(name: str) -> None:
    module = importlib.import_module("movex_p2p")
    assert getattr(module, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from movex_p2p import {name}", namespace)
    assert name in namespace


def test_api_md_names() -> None:
    for name in (
        "Peer",
        "ResourceType",
        "Action",
        "LocalNetwork",
        "master",
        "MovexError",
        "ActionRejected",
        "NotSynced",
        "AuthenticationFailed",
        "ProtocolError",
        "TransportError",
        "ResourceNotFound",
        # 0.2
        "Diagnostic",
        "Identity",
        "IncompatibleType",
        "PeerInfo",
        "RoomInfo",
        "StateTooLarge",
        "browse_rooms",
        # 0.3
        "ActionStuck",
        "room_version",
    ):
        assert name in movex_p2p.__all__
    for kind in ("now", "random", "random_int", "uuid"):
        assert callable(getattr(movex_p2p.master, kind))
    assert movex_p2p.testing.FaultyNetwork is not None
    assert sorted(movex_p2p.testing.__all__) == list(movex_p2p.testing.__all__)


def test_errors_share_one_root() -> None:
    for name in (
        "ActionRejected",
        "AuthenticationFailed",
        "NotSynced",
        "ProtocolError",
        "ResourceNotFound",
        "TransportError",
        "IncompatibleType",
        "StateTooLarge",
        "InvalidState",
    ):
        assert issubclass(getattr(movex_p2p, name), movex_p2p.MovexError)
    assert issubclass(movex_p2p.IncompatibleType, movex_p2p.ActionRejected)
    assert issubclass(movex_p2p.ActionStuck, movex_p2p.NotSynced)


def test_testing_is_reachable_from_a_plain_import() -> None:
    code = "import movex_p2p as mx; print(mx.testing.FaultyNetwork.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "FaultyNetwork"
