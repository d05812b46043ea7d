"""Thumbnails of attention heads: every head's weights as a small uint8 picture, for pages that show many heads.

The explorer's overview (``POST /api/trace``) sends one per head of a trace, and ``qkv train --watch`` stores
them at each validation step (:mod:`qkv.training.watch`) in the same form, so that the server passes them on
as they are. A thumbnail is ``n × n`` cells (``n = min(T, size)``); each cell is the largest weight it covers
(max pooling keeps a one-token diagonal visible at any size), shaded as the heatmaps shade the head
(:func:`~qkv.data.scale.head_scales`): 255 at the head's scale, a high percentile of its weights outside the
sink columns, and the few cells above it clipped to 255. Against the head's largest weight instead, a causal
head's first row (one weight of 1.0: the first token can only attend to itself) or a sink column would leave
the rest of the thumbnail nearly black.
"""

from __future__ import annotations

import base64
from typing import Any

import torch
import torch.nn.functional as F

from qkv.data.scale import head_scales
from qkv.data.trace import AttentionTrace
from qkv.shapes import Tensor, require_rank

__all__ = ["THUMB_SIZE", "thumbnail_cells", "thumbnails"]

THUMB_SIZE = 64  # a thumbnail is at most THUMB_SIZE × THUMB_SIZE cells


def thumbnail_cells(trace: AttentionTrace, size: int = THUMB_SIZE) -> Tensor:
    """Every head of ``trace`` (weights ``(L, H, T, S)``) as uint8 cells ``(L, H, n, n)``, ``n = min(T, size)``."""
    weights = trace.weights
    require_rank("weights", weights, "LHTS")
    L, H, T, S = weights.shape
    n = min(T, size)
    pooled = F.adaptive_max_pool2d(weights.reshape(L * H, 1, T, S).float(), n)  # (L·H, 1, n, n)
    scales = head_scales(trace).reshape(L * H, 1, 1, 1)  # (L·H, 1, 1, 1): each head's 255
    cells = (pooled / scales * 255).clamp(max=255).round().to(torch.uint8)  # (L·H, 1, n, n)
    return cells.reshape(L, H, n, n)


def thumbnails(trace: AttentionTrace, size: int = THUMB_SIZE) -> dict[str, Any]:
    """:func:`thumbnail_cells` as JSON's ``{"size": n, "data": base64 of the (L, H, n, n) bytes, row-major}``."""
    cells = thumbnail_cells(trace, size)
    data = base64.b64encode(cells.contiguous().cpu().numpy().tobytes()).decode("ascii")
    return {"size": int(cells.shape[-1]), "data": data}
