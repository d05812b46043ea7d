"""Where a command's result goes: a file given with ``-o``/``--html`` (checked first, written atomically) or stdout;
and the terminal's width, which every line a command prints fits (:func:`wrap`).

Shared by ``qkv attend`` and ``qkv tour``, so both refuse an unwritable path the same way, before any work,
with one line, and never leave a half-written file.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from qkv.cli.errors import UserError

__all__ = ["check_writable", "columns", "emit", "fold_path", "wrap"]


def check_writable(path: Path) -> None:
    """One clear line before any work when ``path`` cannot be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a directory; give a file name")
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied")


if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO


def emit(output: str | None, content: str | bytes | Callable[[BinaryIO], None]) -> None:
    """Write to ``output`` (atomically, then say so on stderr), or to stdout when there is none. ``content`` may be
    a function that writes UTF-8 into a binary file piece by piece (a large trace's JSON): then the whole text is
    never in memory at once."""
    if callable(content):
        if output is None:
            binary = getattr(sys.stdout, "buffer", None)
            if binary is None:  # a text-only stdout (redirected in a test): gather the pieces
                import io

                gathered = io.BytesIO()
                content(gathered)
                sys.stdout.write(gathered.getvalue().decode("utf-8"))
                return
            sys.stdout.flush()
            content(binary)
            binary.flush()
            return
        from qkv.files import open_atomically

        try:
            with open_atomically(output) as file:
                content(file)
        except OSError as error:
            raise UserError(f"cannot write {output}: {error.strerror or error}") from None
        print(f"wrote {output}", file=sys.stderr)
        return
    data = content.encode("utf-8") if isinstance(content, str) else content
    if output is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    from qkv.files import write_atomically

    try:
        write_atomically(output, data)
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror or error}") from None
    print(f"wrote {output}", file=sys.stderr)


def columns() -> int:
    """The terminal's width (``COLUMNS`` when set; 80 when there is no terminal)."""
    return shutil.get_terminal_size((80, 24)).columns


def wrap(text: str, indent: str = "  ", width: int | None = None) -> str:
    """``text`` folded to the terminal's width, continuation lines indented; paths and words are never split."""
    return textwrap.fill(
        text,
        width=max(20, width or columns() - 1),
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def fold_path(label: str, path: str, indent: str = "    ", width: int | None = None) -> str:
    """``label`` then ``path``, broken after a ``/`` where the line would pass the terminal's width (a path has no
    spaces to wrap at)."""
    width = max(20, width or columns() - 1)
    lines, line = [], label
    for part in re.split(r"(?<=/)", path):
        if line.strip() and len(line) + len(part) > width and line != label:
            lines.append(line)
            line = indent
        line += part
    return "\n".join([*lines, line])
