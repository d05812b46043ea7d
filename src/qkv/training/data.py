"""Batches of (inputs, targets) drawn from one long array of token ids."""

from __future__ import annotations

import hashlib

import torch

from qkv.shapes import Tensor

__all__ = ["fingerprint", "get_batch"]


def get_batch(ids: Tensor, batch_size: int, context: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows of ``context`` tokens: inputs ``(B, T)`` and targets shifted by one."""
    starts = torch.randint(len(ids) - context, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(context)  # (T,)
    windows = ids[starts[:, None] + offsets[None, :]]  # (B, T)
    targets = ids[starts[:, None] + offsets[None, :] + 1]  # (B, T)
    return windows.long(), targets.long()


def fingerprint(*parts: Tensor) -> str:
    """The sha256 of token ids (each part's length, then its ids as little-endian int64): a run records it, so
    that a resume on other text — a corpus rewritten with the same characters — is noticed, not taken as exact."""
    digest = hashlib.sha256()
    for part in parts:
        ids = part.detach().reshape(-1).to("cpu", torch.int64).contiguous()
        digest.update(len(ids).to_bytes(8, "little"))
        digest.update(ids.numpy().astype("<i8", copy=False).tobytes())
    return digest.hexdigest()
