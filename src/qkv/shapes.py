"""The shape alphabet used in every shape comment and docstring of qkv.

    B  batch                      T  query positions        S  key / source positions
    H  query heads                G  key/value heads (grouped-query; H is a multiple of G)
    D  model width                K  head width             V  vocabulary size

Scores and weights are always ``(B, H, T, S)``; the post-softmax tensor is called ``weights``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from qkv.errors import ShapeError

Tensor = torch.Tensor

__all__ = ["ShapeError", "Tensor", "describe", "require_rank"]


def describe(shape: Sequence[int], letters: str) -> str:
    """``describe((2, 4, 8, 16), "BHTK")`` → ``"(B=2, H=4, T=8, K=16)"``."""
    if len(letters) != len(shape):
        return "(" + ", ".join(str(n) for n in shape) + ")"
    return "(" + ", ".join(f"{c}={n}" for c, n in zip(letters, shape, strict=True)) + ")"


def require_rank(name: str, tensor: Tensor, letters: str) -> None:
    """Raise :class:`ShapeError` unless ``tensor`` has one dimension per letter of ``letters``."""
    if tensor.dim() != len(letters):
        expected = "(" + ", ".join(letters) + ")"
        raise ShapeError(
            f"{name} must have {len(letters)} dimensions {expected}, got {tensor.dim()}: {tuple(tensor.shape)}"
        )
