"""qkv.files: a file appears whole or not at all, written at once or piece by piece."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qkv.files import open_atomically, write_atomically


def test_pieces_written_into_open_atomically_appear_together_when_the_block_ends(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with open_atomically(path) as file:
        file.write(b"one, ")
        file.write("twö".encode())
        assert not path.exists()  # still beside it, under another name
    assert path.read_bytes() == "one, twö".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_block_that_raises_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = write_atomically(tmp_path / "out.txt", "old")
    with pytest.raises(RuntimeError, match="interrupted"), open_atomically(path) as file:
        file.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_new_file_gets_the_permissions_open_would_give_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = tmp_path / "fresh"
    with open_atomically(fresh) as file:
        file.write(b"x")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    kept = write_atomically(tmp_path / "kept", "x")
    kept.chmod(0o640)
    with open_atomically(kept) as file:
        file.write(b"y")
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "y"


def test_a_missing_folder_is_an_os_error_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), open_atomically(tmp_path / "missing" / "out.txt"):
        pytest.fail("the block must not run")
