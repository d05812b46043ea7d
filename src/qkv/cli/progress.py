"""What a command is waiting for, said on stderr before a wait of a second or more: ``loading smollm2 (98 MB)…``.

A line goes out before the work, never after it, so that a slow machine (where loading SmolLM2 takes 4–17 s
instead of 1) never leaves the terminal silent; stdout keeps only the command's output. The lines are decided by
size, not by a clock, so the same command always says the same: a model whose weights are at least
:data:`LOAD_NOTICE_BYTES` on disk (the packaged ones; not a small run, which loads in milliseconds), a forward
pass of at least :data:`FORWARD_NOTICE` parameter·tokens (SmolLM2 reading about 370 tokens, a second on one
core), a picture (drawing imports matplotlib: a second by itself). The library prints nothing: these lines are
the CLI's.
"""

from __future__ import annotations

import sys
from pathlib import Path

LOAD_NOTICE_BYTES = 10_000_000  # weights on disk from which loading is announced
FORWARD_NOTICE = 50_000_000_000  # parameters × tokens from which a forward pass (trace, prompt) is announced


def say(doing: str) -> None:
    """``doing…`` on a line of stderr, at once."""
    print(f"{doing}…", file=sys.stderr, flush=True)


def weights_bytes(name_or_path: str) -> int | None:
    """The bytes of weights :func:`qkv.load` reads for ``name_or_path``: a known name's pinned file when it is
    installed, a file's size, or a directory's ``model*.safetensors`` (a run's in its ``checkpoint/``); ``None``
    when there is nothing to load (the load itself then says what is wrong)."""
    from qkv.data.registry import PACKAGED

    entry = PACKAGED.get(name_or_path)
    if entry is not None:
        return entry.size if entry.installed_path() is not None else None
    path = Path(name_or_path).expanduser()
    try:
        if path.is_file():
            return path.stat().st_size
        if path.is_dir():
            files = [*path.glob("model*.safetensors"), *path.glob("checkpoint/model*.safetensors")]
            return sum(file.stat().st_size for file in files) or None
    except OSError:
        return None
    return None


def megabytes(size: int) -> str:
    """``98 MB``, ``1.2 GB``, ``0.4 MB``: decimal units, two or three significant digits."""
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    return f"{size / 1e6:.0f} MB" if size >= 10e6 else f"{size / 1e6:.1f} MB"


def loading(name: str) -> None:
    """Say ``loading NAME (SIZE)…`` when the weights :func:`qkv.load` reads for ``name`` are large enough to
    take a while (the imports before it included)."""
    size = weights_bytes(name)
    if size is not None and size >= LOAD_NOTICE_BYTES:
        say(f"loading {name} ({megabytes(size)})")


def forward(doing: str, parameters: int, tokens: int) -> None:
    """Say ``doing…`` when a pass of ``tokens`` tokens through ``parameters`` parameters takes a while."""
    if parameters * tokens >= FORWARD_NOTICE:
        say(doing)
