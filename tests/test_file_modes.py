"""Files written aside and renamed into place get the permissions a plain ``open`` or ``mkdir`` would give them:
whatever the umask says, never ``mkstemp``'s private 0600 (nor ``mkdtemp``'s 0700)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from qkv.files import make_ordinary, write_atomically


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The umask set for one test, and the previous one put back after it."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_a_new_file_gets_what_open_would_give_it(tmp_path: Path, umask: int) -> None:
    (tmp_path / "plain.txt").write_text("x")  # the reference: a plain open under the same umask
    write_atomically(tmp_path / "atomic.txt", "x")
    assert mode(tmp_path / "atomic.txt") == mode(tmp_path / "plain.txt") == 0o666 & ~umask


def test_replacing_a_file_keeps_its_mode(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "kept.txt"
    target.write_text("old")
    target.chmod(0o640)
    write_atomically(target, "new")
    assert target.read_text() == "new" and mode(target) == 0o640


def test_make_ordinary_undoes_mkstemp_and_mkdtemp_privacy(tmp_path: Path, umask: int) -> None:
    import tempfile

    handle, name = tempfile.mkstemp(dir=tmp_path)
    os.close(handle)
    folder = tempfile.mkdtemp(dir=tmp_path)
    assert mode(Path(name)) == 0o600 and mode(Path(folder)) == 0o700
    (tmp_path / "plain").mkdir()  # the references: mkdir and open under the same umask
    (tmp_path / "plain.txt").touch()
    make_ordinary(name)
    make_ordinary(folder)
    assert mode(Path(name)) == mode(tmp_path / "plain.txt") and mode(Path(folder)) == mode(tmp_path / "plain")
