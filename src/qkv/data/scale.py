"""How the heatmaps shade weights: one colour scale per head, set by the text's own weights, not by the sinks.

A head that parks most of its attention on a sink token (``[CLS]``; a causal model's first token, whose row 0 is
a single weight of 1.0) would, shaded against its largest weight, show one dark column and an empty square.
So every heatmap (PNG/SVG grid, terminal, HTML, the explorer) and every thumbnail shades a head's weights
against its *scale*: the ``PERCENTILE``-th percentile of the weights outside the sink columns, over the cells a
token can attend to (a causal trace's lower triangle). Weights above it are drawn at full colour (clipped); the
heatmaps draw sink columns apart, in grey, against 1.
:attr:`AttentionTrace.sinks <qkv.data.trace.AttentionTrace.sinks>` decides which tokens are sinks.
"""

from __future__ import annotations

import math

import torch

from qkv.data.trace import AttentionTrace
from qkv.shapes import Tensor

__all__ = ["PERCENTILE", "head_scales"]

PERCENTILE = 99  # of the text's weights: the few above it saturate instead of washing out the rest


def head_scales(trace: AttentionTrace, weights: Tensor | None = None) -> Tensor:
    """The colour scale of each head: ``weights (…, T, S)`` (the trace's ``(L, H, T, S)`` by default) → ``(…)``.

    The ``PERCENTILE``-th percentile of each head's weights outside the sink columns and, for a causal trace,
    outside the future (the upper triangle, always 0); never below the smallest positive float, so dividing by
    it is safe. A head with no such cells (every key a sink) gets 1.
    """
    weights = trace.weights if weights is None else weights
    T, S = weights.shape[-2:]
    keep = ~torch.tensor(list(trace.sinks), dtype=torch.bool)[None, :].expand(T, S)  # (T, S)
    if trace.causal:
        keep = keep & torch.ones(T, S, dtype=torch.bool).tril()
    if not bool(keep.any()):
        return torch.ones(weights.shape[:-2])
    cells = weights.detach().float().cpu()[..., keep]  # (…, N): the cells that count
    rank = max(1, math.ceil(PERCENTILE / 100 * cells.shape[-1]))  # the nearest-rank percentile
    return cells.kthvalue(rank, dim=-1).values.clamp(min=torch.finfo(torch.float32).tiny)
