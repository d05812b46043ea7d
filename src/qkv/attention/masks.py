"""Boolean attention masks in PyTorch's SDPA convention: ``True`` where a query may attend to a key.

Every mask here is shaped ``(T, S)`` or broadcastable to ``(B, H, T, S)``. When ``T != S`` the queries are
the *last* ``T`` positions of the ``S`` keys (a block of new tokens at the end of a KV cache), so query ``t``
sits at absolute position ``t + S - T``.
"""

from __future__ import annotations

import torch

from qkv.errors import InputError
from qkv.shapes import ShapeError, Tensor

__all__ = ["causal", "combine", "padding", "sliding_window"]


def _query_positions(T: int, S: int, device: torch.device | None) -> tuple[Tensor, Tensor]:
    if T > S:
        raise ShapeError(
            f"a causal mask needs at least as many keys as queries (queries are the last T of S keys), "
            f"got T={T} queries and S={S} keys"
        )
    rows = torch.arange(S - T, S, device=device).unsqueeze(1)  # (T, 1) absolute query positions
    cols = torch.arange(S, device=device).unsqueeze(0)  # (1, S) absolute key positions
    return rows, cols


def causal(T: int, S: int | None = None, *, device: torch.device | None = None) -> Tensor:
    """``(T, S)`` mask where query ``t`` sees keys ``0 … t + S - T`` (the past and itself, never the future)."""
    rows, cols = _query_positions(T, T if S is None else S, device)
    return cols <= rows  # (T, S)


def sliding_window(T: int, S: int | None = None, *, window: int, device: torch.device | None = None) -> Tensor:
    """Causal mask that also forgets: query ``t`` sees only the last ``window`` keys up to itself."""
    if window < 1:
        raise InputError(f"window must be at least 1 key, got {window}; give a positive window")
    rows, cols = _query_positions(T, T if S is None else S, device)
    return (cols <= rows) & (cols > rows - window)  # (T, S)


def padding(keep: Tensor) -> Tensor:
    """From ``keep`` ``(B, S)`` (``True`` for real tokens) to a mask ``(B, 1, 1, S)`` hiding padded keys."""
    if keep.dim() != 2:
        raise ShapeError(f"a padding mask is built from a (B, S) tensor, got {tuple(keep.shape)}")
    return keep.bool()[:, None, None, :]  # (B, 1, 1, S)


def combine(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the masks that are not ``None`` (broadcasting); ``None`` if none is given."""
    result: Tensor | None = None
    for mask in masks:
        if mask is None:
            continue
        result = mask if result is None else result & mask
    return result
