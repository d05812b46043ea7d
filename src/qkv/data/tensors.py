"""Named tensors from a safetensors file: every tensor, a few of them, or a few rows of one.

Safetensors only: a file is identified by its first bytes (:func:`~qkv.data.registry.sniff_format`), and a
pickle is refused before a byte of it is interpreted. The format's header says where each tensor sits, so
reading a few tensors, or a few rows of one, reads only those bytes: the article takes ten rows of MiniLM's
30,522 × 384 embedding table without the rest. A missing, damaged or foreign file, and a tensor the file does
not hold, are each one :class:`~qkv.data.registry.PretrainedError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from qkv.data.registry import PretrainedError, pickle_refusal, sniff_format
from qkv.shapes import Tensor

__all__ = ["read_rows", "read_tensors"]


def read_tensors(path: Path, names: Iterable[str] | None = None) -> dict[str, Tensor]:
    """The tensors ``names`` of the safetensors file ``path`` (every tensor when ``None``), as stored."""
    _require_safetensors(path)
    try:
        with safe_open(str(path), framework="pt") as file:
            held = list(file.keys())
            wanted = held if names is None else list(names)
            _require_names(path, held, wanted)
            return {name: file.get_tensor(name) for name in wanted}
    except (SafetensorError, OSError) as error:
        raise PretrainedError(f"cannot read {path}: {error} (a truncated or damaged file?)") from None


def read_rows(path: Path, name: str, rows: Sequence[int]) -> Tensor:
    """Rows ``rows`` (along the first dimension) of the tensor ``name`` in ``path``: ``(len(rows), …)``."""
    _require_safetensors(path)
    try:
        with safe_open(str(path), framework="pt") as file:
            _require_names(path, list(file.keys()), [name])
            table = file.get_slice(name)
            count = int(table.get_shape()[0])
            outside = [row for row in rows if not 0 <= row < count]
            if outside:
                raise PretrainedError(f"{path}: {name} has rows 0…{count - 1}, not {outside[0]}")
            return torch.cat([table[row : row + 1] for row in rows] or [table[0:0]])  # (R, …)
    except (SafetensorError, OSError) as error:
        raise PretrainedError(f"cannot read {path}: {error} (a truncated or damaged file?)") from None


def _require_safetensors(path: Path) -> None:
    if not path.is_file():
        raise PretrainedError(f"{path} is missing")
    found = sniff_format(path)
    if found == "pickle":
        raise pickle_refusal(path)
    if found != "safetensors":
        raise PretrainedError(f"{path} is not a safetensors file (its first bytes say {found})")


def _require_names(path: Path, held: Sequence[str], wanted: Sequence[str]) -> None:
    missing = set(wanted) - set(held)
    if missing:
        raise PretrainedError(f"{path} holds no tensor named {sorted(missing)[0]!r}")
