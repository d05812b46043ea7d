"""Traces for the Inspect view: capture one, keep a few, and answer the overview, one head and the Q/K view.

``POST /api/trace`` runs :func:`capture` (one forward pass: the weights of every layer through
:func:`qkv.trace`, each layer's queries and keys through :mod:`qkv.serve.projections`) and answers the
:func:`overview`: tokens, per-head metrics (:func:`qkv.inspection.head_metrics`), a small thumbnail of every
head (:func:`thumb_size`) and the fused-versus-exact gap. The trace stays in a cache (least recently used dropped
first: :mod:`qkv.serve.cache`) so that clicking a head (:func:`head`) or opening the Q/K view
(:func:`qk_view`) reads it back without running the model again.
"""

from __future__ import annotations

import base64
import math
import secrets
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from qkv.data.metrics import head_metrics
from qkv.data.thumbnails import THUMB_SIZE, thumbnails
from qkv.data.trace import AttentionTrace
from qkv.inspection.trace import trace
from qkv.serve.config import Limits
from qkv.serve.inputs import RequestError
from qkv.serve.models import Loaded
from qkv.serve.projections import capture_projections, fused_exact_gap
from qkv.shapes import Tensor

MANY_HEADS = 64  # more heads than this in a trace (MiniLM's 72, SmolLM2's 270): 32 × 32 thumbnails

__all__ = [
    "MANY_HEADS",
    "THUMB_SIZE",
    "TraceEntry",
    "capture",
    "head",
    "overview",
    "qk_view",
    "significant",
    "thumb_size",
    "thumbnails",
]


@dataclass(frozen=True, eq=False)
class TraceEntry:
    """A captured trace, with each layer's ``queries (H, T, K)`` and ``keys (G, S, K)`` (float32, RoPE
    applied) for the Q/K view, and the fused-versus-exact gap of its attention outputs."""

    id: str
    trace: AttentionTrace
    causal: bool
    queries: tuple[Tensor, ...]
    keys: tuple[Tensor, ...]
    exactness: float

    @property
    def nbytes(self) -> int:
        tensors = [self.trace.weights, *self.queries, *self.keys]
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def capture(loaded: Loaded, text: str, limits: Limits) -> TraceEntry:
    """Run ``text`` through the model once and keep everything the Inspect view asks for (call in the worker)."""
    count = len(loaded.tokenizer.encode(text))
    limit = min(limits.tokens, loaded.network.config.context)
    if count > limit:
        raise RequestError(f"the text is {count} tokens long; {loaded.name} reads at most {limit} here: shorten it")
    with capture_projections(loaded.network) as layers:
        result = trace(loaded.handle, text, name=loaded.name)
    return TraceEntry(
        id=f"t{secrets.token_hex(5)}",
        trace=result,
        causal=loaded.causal,
        queries=tuple(layer.queries.float() for layer in layers),
        keys=tuple(layer.keys.float() for layer in layers),
        exactness=fused_exact_gap(loaded.network, layers, result.weights),
    )


def significant(values: Tensor, digits: int = 6) -> Any:
    """A tensor as nested lists of floats rounded to ``digits`` significant digits (short JSON)."""
    return _rounded(values.tolist(), digits)


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, list):
        return [_rounded(item, digits) for item in value]
    return float(f"{value:.{digits}g}")


def thumb_size(heads: int) -> int:
    """The thumbnails' largest side for a trace of ``heads`` heads in all: :data:`THUMB_SIZE` (64) up to
    :data:`MANY_HEADS`, half that beyond, so that the overview of a model with many heads stays small on the
    wire (a grid of many heads draws each one small; the head in detail is sent in full)."""
    return THUMB_SIZE if heads <= MANY_HEADS else THUMB_SIZE // 2


def overview(entry: TraceEntry) -> dict[str, Any]:
    """What the Inspect view first shows: tokens, per-head metrics ``(L, H)``, thumbnails, exactness."""
    result = entry.trace
    metrics = head_metrics(result)
    return {
        "id": entry.id,
        "model": result.model,
        "tokens": list(result.tokens),
        "labels": result.labels,
        "special": list(result.special),
        "sinks": list(result.sinks),
        "layers": list(result.layers),
        "heads": result.heads,
        "causal": entry.causal,
        "metrics": {
            "entropy": significant(metrics.entropy),
            "distance": significant(metrics.distance),
            "asymmetry": significant(metrics.asymmetry),
            "relative_asymmetry": significant(metrics.relative_asymmetry),
            "sink_share": significant(metrics.sink_share),
        },
        "thumbs": thumbnails(result, thumb_size(len(result.layers) * result.heads)),
        "exactness": entry.exactness,
    }


def _position(entry: TraceEntry, layer: int, head: int | None) -> int:
    """The index of ``layer`` in the trace, after checking ``layer`` and ``head`` (``None``: the mean)."""
    result = entry.trace
    if layer not in result.layers:
        raise RequestError(f"layer {layer} is out of range; this trace holds layers 0…{len(result.layers) - 1}")
    if head is not None and not 0 <= head < result.heads:
        raise RequestError(f"head {head} is out of range; this model has heads 0…{result.heads - 1}")
    return result.layer_index(layer)


def head(entry: TraceEntry, layer: int, head: int | None) -> dict[str, Any]:
    """One head's weights ``(T, S)`` (``head=None``: the mean of the layer's heads) as float32 base64."""
    _position(entry, layer, head)
    weights = entry.trace.head_weights(layer, head).to(torch.float32).contiguous()  # (T, S)
    data = weights.numpy().astype("<f4").tobytes()
    return {
        "layer": layer,
        "head": "mean" if head is None else head,
        "weights": base64.b64encode(data).decode("ascii"),
        "shape": list(weights.shape),
    }


def qk_view(entry: TraceEntry, layer: int, head: int) -> dict[str, Any]:
    """One head's queries and keys in one 2-D picture, as AttentionViz draws them.

    The keys are moved so that their mean is the queries' mean, then queries are scaled by ``c`` and keys by
    ``1/c`` so that their mean lengths match: neither changes any row's softmax (each query's scores shift by
    one constant, and ``q·k`` is unchanged by the scaling). PCA of both together gives the two axes.
    ``correlation`` is Pearson's r between minus the query–key distance (in the head's full width, after the
    same moves) and the weight, over every pair the head may attend (0 when either does not vary).
    """
    index = _position(entry, layer, head)
    queries, keys = entry.queries[index], entry.keys[index]  # (H, T, K), (G, S, K)
    H, G = queries.shape[0], keys.shape[0]
    q = queries[head].double()  # (T, K)
    k = keys[head // (H // G)].double()  # (S, K): the key/value head this query head reads
    k = k - k.mean(dim=0) + q.mean(dim=0)
    tiny = torch.finfo(torch.float64).tiny
    scale = math.sqrt(float(k.norm(dim=-1).mean().clamp(min=tiny) / q.norm(dim=-1).mean().clamp(min=tiny)))
    q, k = q * scale, k / scale
    points = torch.cat([q, k])  # (T + S, K)
    centred = points - points.mean(dim=0)
    _, _, directions = torch.linalg.svd(centred, full_matrices=False)  # (min(T + S, K), K)
    axes = directions[:2]  # (≤2, K)
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))  # (≤2, 1): a fixed orientation
    projected = centred @ (axes * torch.where(signs == 0, 1.0, signs)).T  # (T + S, ≤2)
    if projected.shape[1] < 2:
        projected = F.pad(projected, (0, 2 - projected.shape[1]))  # (T + S, 2)
    T = q.shape[0]
    weights = entry.trace.weights[index, head].double()  # (T, S)
    allowed = torch.ones_like(weights, dtype=torch.bool)
    if entry.causal:
        allowed = torch.tril(allowed)  # (T, S): query t sees keys 0…t
    closeness = -torch.cdist(q, k)  # (T, S)
    return {
        "queries": significant(projected[:T], 5),
        "keys": significant(projected[T:], 5),
        "correlation": _pearson(closeness[allowed], weights[allowed]),
        "scale": float(f"{scale:.6g}"),
    }


def _pearson(x: Tensor, y: Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    spread = float(x.norm() * y.norm())
    if not spread > 0:
        return 0.0
    return float(f"{float((x * y).sum()) / spread:.6g}")
