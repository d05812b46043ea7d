"""Writing a file so that a crash, a kill or a full disk never leaves half of it: write aside, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["make_ordinary", "write_atomically"]


def write_atomically(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8, ``\\n`` line ends) beside ``path`` and rename it into place, with the
    permissions a plain ``open`` would give (``mkstemp`` makes its files private). The folder must exist."""
    target = Path(path)
    content = data.encode("utf-8") if isinstance(data, str) else data
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.chmod(temporary, target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def make_ordinary(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the permissions a plain ``open`` (a file) or ``mkdir`` (a folder) would have given it under the
    umask: ``mkstemp`` and ``mkdtemp`` make theirs private (0600, 0700), which suits secrets, not a checkpoint or a
    picture that the user's group, a server or a later ``cp`` should read as they read the user's other files."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; set it straight back
    os.umask(mask)
    return mask
