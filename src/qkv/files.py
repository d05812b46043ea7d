"""Writing a file so that a crash, a kill or a full disk never leaves half of it: write aside, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["make_ordinary", "open_atomically", "write_atomically"]


def write_atomically(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8, ``\\n`` line ends) beside ``path`` and rename it into place, with the
    permissions a plain ``open`` would give (``mkstemp`` makes its files private). The folder must exist."""
    content = data.encode("utf-8") if isinstance(data, str) else data
    with open_atomically(path) as file:
        file.write(content)
    return Path(path)


@contextmanager
def open_atomically(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file beside ``path`` to write piece by piece (a large document need never be whole in memory);
    it is renamed into place when the block ends, and removed instead if the block raises. Permissions and the
    folder as for :func:`write_atomically`."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
        os.chmod(temporary, target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def make_ordinary(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the permissions a plain ``open`` (a file) or ``mkdir`` (a folder) would have given it under the
    umask: ``mkstemp`` and ``mkdtemp`` make theirs private (0600, 0700), which suits secrets, not a checkpoint or a
    picture that the user's group, a server or a later ``cp`` should read as they read the user's other files."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; set it straight back
    os.umask(mask)
    return mask
