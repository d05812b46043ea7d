"""Batches of (inputs, targets) drawn from one long array of token ids."""

from __future__ import annotations

import torch

from qkv.shapes import Tensor

__all__ = ["get_batch"]


def get_batch(ids: Tensor, batch_size: int, context: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows of ``context`` tokens: inputs ``(B, T)`` and targets shifted by one."""
    starts = torch.randint(len(ids) - context, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(context)  # (T,)
    windows = ids[starts[:, None] + offsets[None, :]]  # (B, T)
    targets = ids[starts[:, None] + offsets[None, :] + 1]  # (B, T)
    return windows.long(), targets.long()
