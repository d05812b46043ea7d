"""Where an export goes: checked before any work, written aside, renamed into place only when complete.

A directory export is built in a hidden staging directory beside its target and renamed over it; a file
export is written to a hidden temporary file beside its target and renamed over it. Missing folders above the
target are made, and removed again if the export fails. A failure (a full disk, a kill) leaves nothing behind,
and an existing target is only replaced with ``force``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qkv.export.support import ExportError
from qkv.files import make_ordinary

__all__ = ["check_target", "staged_directory", "staged_file"]


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_target(path: Path, *, directory: bool, force: bool) -> None:
    """One line, before any work, when ``path`` cannot become the export (a directory, or a file)."""
    kind = "directory" if directory else "file"
    if path.exists() or path.is_symlink():
        if directory and not path.is_dir():
            raise ExportError(f"cannot write {path}: it is a file; a Hugging Face export is a directory")
        if not directory and path.is_dir():
            raise ExportError(f"cannot write {path}: it is a directory; give a .gguf file name")
        empty_directory = directory and path.is_dir() and not any(path.iterdir())
        if not force and not empty_directory:
            raise ExportError(f"{path} already exists; choose a new {kind} or pass --force to replace it")
    folder = _nearest_existing(path.absolute().parent)
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: the folder {folder} is not writable")


def _failed(path: Path, error: OSError) -> ExportError:
    return ExportError(f"cannot write {path}: {error.strerror or error}; nothing was written")


@contextmanager
def _folders_for(path: Path) -> Iterator[None]:
    """Make the missing folders above ``path``; remove the ones made here if the ``with`` body fails."""
    missing = []
    folder = path.absolute().parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _failed(path, error) from None
        yield
    except BaseException:
        for made in missing:  # deepest first; each is empty once what the body wrote is gone
            try:
                made.rmdir()
            except OSError:
                break
        raise


def _make_ordinary_tree(root: Path) -> None:
    """Give ``root`` and everything in it the modes a plain ``open`` or ``mkdir`` would: ``mkdtemp`` makes the
    staging directory private (0700) and safetensors its files (0600), and an export is ordinary files."""
    for folder, _, names in os.walk(root):
        for name in names:
            make_ordinary(Path(folder, name))
        make_ordinary(folder)


@contextmanager
def staged_directory(path: Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``path``; once the ``with`` body completes, it replaces ``path``."""
    with _folders_for(path):
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        except OSError as error:
            raise _failed(path, error) from None
        try:
            yield staging
            _make_ordinary_tree(staging)
            old: Path | None = None
            if path.exists():  # an empty directory, or any with force: moved aside, removed once replaced
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                old.rmdir()
                path.rename(old)
            try:
                staging.rename(path)
            except OSError:
                if old is not None:
                    old.rename(path)
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise _failed(path, error) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; once the ``with`` body has written it, it replaces ``path``."""
    with _folders_for(path):
        try:
            handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as error:
            raise _failed(path, error) from None
        os.close(handle)
        temporary = Path(name)
        try:
            yield temporary
            make_ordinary(temporary)  # mkstemp makes it private; an export is an ordinary file
            os.replace(temporary, path)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise _failed(path, error) from None
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
