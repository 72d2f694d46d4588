"""Identity files: private (0600, a warning otherwise), checksummed, created atomically, safe under concurrency."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

import movex_p2p as mx
from movex_p2p.errors import IdentityFileError, InsecureIdentityFile, MovexError

POSIX = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
SRC = Path(__file__).resolve().parent.parent / "src"


def _intact(path: Path) -> bytes:
    mx.Identity.load_or_create(path)
    return path.read_bytes()


@POSIX
def test_a_new_file_is_private_and_loads_without_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "a.key"
    first = mx.Identity.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mx.Identity.load_or_create(path).id == first.id
    assert os.listdir(path.parent) == ["a.key"]  # no temporary file left behind


@POSIX
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=oct)
def test_a_file_others_can_read_loads_with_a_warning(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "a.key"
    first = mx.Identity.load_or_create(path)
    path.chmod(mode)
    with pytest.warns(InsecureIdentityFile, match="chmod 600") as caught:
        again = mx.Identity.load_or_create(path)
    assert again.id == first.id
    assert caught[0].filename == __file__  # it points at the caller's line


def test_every_flipped_bit_is_refused_never_a_different_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    good = _intact(path)
    for bit in range(len(good) * 8):
        damaged = bytearray(good)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        path.chmod(0o600)
        with pytest.raises(IdentityFileError, match="identity"):
            mx.Identity.load_or_create(path)


def test_every_truncation_and_an_extension_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    good = _intact(path)
    for damaged in [*(good[:size] for size in range(len(good))), good + b"\0"]:
        path.write_bytes(damaged)
        path.chmod(0o600)
        with pytest.raises(IdentityFileError):
            mx.Identity.load_or_create(path)


def test_a_bad_file_raises_a_movex_error_that_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(MovexError, match="does not hold a movex_p2p identity") as caught:
        mx.Identity.load_or_create(path)
    assert isinstance(caught.value, ValueError)
    assert path.read_bytes() == b"not a key"  # left as it was


def test_a_file_of_the_first_format_loads_and_is_upgraded(tmp_path: Path) -> None:
    key = bytes(range(32))
    path = tmp_path / "old.key"
    path.write_bytes(key)  # what load_or_create wrote before the checksum
    path.chmod(0o600)
    old = mx.Identity.load_or_create(path)
    assert old.private_bytes() == key
    assert len(path.read_bytes()) > 32
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600
    assert mx.Identity.load_or_create(path).id == old.id == mx.Identity(key).id
    assert sorted(os.listdir(tmp_path)) == ["old.key"]


def test_200_threads_creating_one_file_all_get_one_identity(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "a.key"
    count = 200
    start = threading.Barrier(count)
    ids: list[str] = []
    errors: list[BaseException] = []

    def load() -> None:
        start.wait()
        try:
            ids.append(mx.Identity.load_or_create(path).id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ids) == count
    assert set(ids) == {mx.Identity.load_or_create(path).id}
    assert os.listdir(path.parent) == ["a.key"]


_WORKER = """
import sys, threading
import movex_p2p as mx
path, count = sys.argv[1], int(sys.argv[2])
start = threading.Barrier(count + 1)
ids = []
def load():
    start.wait()
    ids.append(mx.Identity.load_or_create(path).id)
threads = [threading.Thread(target=load) for _ in range(count)]
for thread in threads:
    thread.start()
print("ready", flush=True)
sys.stdin.readline()
start.wait()
for thread in threads:
    thread.join()
print(" ".join(ids), flush=True)
"""


def test_8_processes_of_25_threads_creating_one_file_all_get_one_identity(tmp_path: Path) -> None:
    path = tmp_path / "a.key"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), "25"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(8)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:  # every thread of every process is at its barrier: go
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    ids: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        ids += out.split()
    assert len(ids) == 200
    assert set(ids) == {mx.Identity.load_or_create(path).id}


def test_without_hard_links_a_file_is_still_created_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    path = tmp_path / "a.key"
    first = mx.Identity.load_or_create(path)
    assert mx.Identity.load_or_create(path).id == first.id
    assert os.listdir(tmp_path) == ["a.key"]


def test_a_first_format_file_that_cannot_be_rewritten_loads_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(source: object, target: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    key = bytes(range(32))
    path = tmp_path / "old.key"
    path.write_bytes(key)
    path.chmod(0o600)
    monkeypatch.setattr(os, "replace", read_only)
    with pytest.warns(UserWarning, match="could not rewrite"):
        assert mx.Identity.load_or_create(path).private_bytes() == key
    assert path.read_bytes() == key
    assert sorted(os.listdir(tmp_path)) == ["old.key"]  # the temporary file is gone
