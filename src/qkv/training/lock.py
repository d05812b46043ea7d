"""One writer per run directory: ``RUN/.lock``, held with ``flock`` for as long as a process trains into it.

Two trainings into one directory would delete each other's half-written checkpoints (each save clears the
staging folders it finds) and leave a run whose files come from both. :func:`hold_run` takes an exclusive
``flock`` on ``RUN/.lock`` and refuses, in one line naming the other process, when someone else holds it.

The kernel releases an ``flock`` when its holder exits, however it exits, so a crash leaves no stale lock to
clear by hand. A clean exit also removes the file: the lock is taken on the file that is at the path *after*
locking, so a process that opened the file just before its holder removed it tries again on the new one.

Within one thread the lock is re-entrant (the command line holds it around :func:`~qkv.training.loop.train`,
which holds it around each :func:`~qkv.training.checkpoint.save_checkpoint`); another thread of the same
process is refused like another process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from qkv.errors import InputError

_flock: Callable[[int, int], None] | None
try:
    import fcntl

    _flock, _EXCLUSIVE_NOW = fcntl.flock, fcntl.LOCK_EX | fcntl.LOCK_NB
except ImportError:  # Windows: no flock; runs are not locked there
    _flock, _EXCLUSIVE_NOW = None, 0

__all__ = ["LOCK_FILE", "RunDirectoryError", "check_run_dir", "hold_run"]

LOCK_FILE = ".lock"


class RunDirectoryError(InputError):
    """A run directory cannot be used: it is a file or lies below one, or another process trains into it."""


def check_run_dir(run: Path) -> None:
    """Refuse, before any work, a run directory that is a file or lies below one (which ``mkdir`` would only
    report once training was about to begin)."""
    for path in (run, *run.parents):
        if path.exists():  # the nearest part of the path that exists decides
            if not path.is_dir():
                where = "is a file" if path == run else f"lies below {path}, which is a file"
                raise RunDirectoryError(f"cannot train into {run}: it {where}; choose a directory")
            return


_guard = threading.Lock()
_held: dict[tuple[str, int], tuple[int, int]] = {}  # (run, thread) → (file descriptor, how many holds)


def _holder(descriptor: int) -> str:
    """`` (process 1234)`` from the lock file's contents, or nothing when it holds no process id."""
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {text})" if text.isdigit() else ""


def _lock(run: Path) -> int:
    """An open descriptor of ``run/.lock`` holding its exclusive flock; refuse when another holds it."""
    path = run / LOCK_FILE
    assert _flock is not None
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _flock(descriptor, _EXCLUSIVE_NOW)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise RunDirectoryError(
                f"{run} is in use: another qkv training{holder} is writing into it; wait for it to finish, or "
                "train into another directory"
            ) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        opened = os.fstat(descriptor)
        if current is not None and (current.st_ino, current.st_dev) == (opened.st_ino, opened.st_dev):
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
            return descriptor
        os.close(descriptor)  # its holder removed the file as we locked it: lock the one at the path now


def _unlock(run: Path, descriptor: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (run / LOCK_FILE).unlink()  # removed while still locked, see the module's docstring
    os.close(descriptor)


@contextlib.contextmanager
def hold_run(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Inside, this thread alone writes into ``run_dir`` (created if missing; removed again on the way out if it
    was created here and is still empty). Raises :class:`RunDirectoryError` when the path cannot be a
    directory or another process (or thread) holds it."""
    run = Path(run_dir)
    check_run_dir(run)
    created = not run.exists()
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"cannot create the run directory {run}: {error.strerror or error}") from None
    if _flock is None:
        yield run
        return
    key = (str(run.resolve()), threading.get_ident())
    with _guard:
        descriptor, holds = _held.get(key, (-1, 0))
        if not holds:
            descriptor = _lock(run)
        _held[key] = (descriptor, holds + 1)
    try:
        yield run
    finally:
        with _guard:
            descriptor, holds = _held.pop(key)
            if holds > 1:
                _held[key] = (descriptor, holds - 1)
            else:
                _unlock(run, descriptor)
                if created:
                    with contextlib.suppress(OSError):
                        run.rmdir()  # only if empty: a run refused before it wrote anything leaves nothing
