"""Numbers that describe what a head does, from its weights ``A (T, S)`` (rows: queries, summing to 1).

- :func:`entropy` — how spread out each token's attention is, in bits: 0 when it looks at one token, log2(n)
  when it spreads evenly over n tokens. Averaged over the query tokens (:func:`row_entropy`: one per row).
- :func:`attended_distance` — how far away, in tokens, the attention lands on average (0: each token looks at
  itself; 1: at a neighbour).
- :func:`asymmetry` — ``‖A − Aᵀ‖`` (Frobenius): 0 when "a attends to b" always equals "b attends to a". The
  article's part 2 relevances (key · key) are symmetric before they are normalised; separate queries and keys
  (part 3) let a head look from a to b without b looking back, and real heads do: measure it.
  :func:`relative_asymmetry` divides by ``√2·‖A‖``, its largest value for a non-negative ``A``: a number in
  [0, 1].
- :func:`sink_share` — the share of attention that goes to the sink tokens: the special tokens (``[CLS]``,
  ``[SEP]``, ``<|im_start|>``) and the first token, where many heads put their attention when nothing in the
  text is relevant (a causal model without a ``<s>`` uses its first token, whatever it is).
- :func:`top_attended` and :func:`strongest_arrows` — the tokens each token attends to most, and the
  strongest query → key pairs of a head.

These are tensor maths over plain data, shared by the renderers, ``qkv attend`` and the article's Part 4.

Every function takes weights with any leading dimensions ``(…, T, S)`` and reduces the last two, so one call
measures every head of a trace: ``entropy(trace.weights)`` is ``(L, H)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from qkv.data.trace import REPR_TEXT, AttentionTrace, _cut, _ranges
from qkv.errors import InputError
from qkv.shapes import ShapeError, Tensor

__all__ = [
    "Arrow",
    "HeadMetrics",
    "asymmetry",
    "attended_distance",
    "entropy",
    "head_metrics",
    "relative_asymmetry",
    "row_entropy",
    "sink_share",
    "strongest_arrows",
    "top_attended",
]


def _require_weights(weights: Tensor) -> None:
    if weights.dim() < 2:
        raise ShapeError(f"weights must be (…, T, S), got shape {tuple(weights.shape)}")


def row_entropy(weights: Tensor) -> Tensor:
    """``−Σ_s A[s] · log2 A[s]`` of each row, in bits (``0 · log 0`` counts as 0): ``(…, S)`` → ``(…)``."""
    if weights.dim() < 1:
        raise ShapeError("row_entropy needs weights with at least one dimension (…, S), got a scalar")
    logs = torch.where(weights > 0, weights.clamp(min=torch.finfo(weights.dtype).tiny).log2(), 0.0)
    return -(weights * logs).sum(dim=-1)


def entropy(weights: Tensor) -> Tensor:
    """Mean over query tokens of ``−Σ_s A[t, s] · log2 A[t, s]``, in bits: ``(…, T, S)`` → ``(…)``."""
    _require_weights(weights)
    return row_entropy(weights).mean(dim=-1)


def attended_distance(weights: Tensor) -> Tensor:
    """Mean over query tokens of ``Σ_s A[t, s] · |t − s|``, in tokens: ``(…, T, S)`` → ``(…)``.

    When ``S > T`` (queries after cached keys), query ``t`` sits at position ``S − T + t``.
    """
    _require_weights(weights)
    T, S = weights.shape[-2:]
    queries = torch.arange(T, device=weights.device) + (S - T)
    keys = torch.arange(S, device=weights.device)
    distance = (queries[:, None] - keys[None, :]).abs().to(weights.dtype)  # (T, S)
    return (weights * distance).sum(dim=-1).mean(dim=-1)


def asymmetry(weights: Tensor) -> Tensor:
    """``‖A − Aᵀ‖`` (Frobenius norm) of square weights: ``(…, T, T)`` → ``(…)``."""
    _require_square(weights)
    return torch.linalg.matrix_norm(weights - weights.transpose(-1, -2))


def relative_asymmetry(weights: Tensor) -> Tensor:
    """``‖A − Aᵀ‖ / (√2·‖A‖)``, in [0, 1] for non-negative weights: 0 symmetric, 1 when no pair of tokens
    attends both ways. ``(…, T, T)`` → ``(…)``."""
    _require_square(weights)
    norm = torch.linalg.matrix_norm(weights)
    return asymmetry(weights) / (math.sqrt(2.0) * norm).clamp(min=torch.finfo(weights.dtype).tiny)


def _require_square(weights: Tensor) -> None:
    _require_weights(weights)
    if weights.shape[-1] != weights.shape[-2]:
        raise ShapeError(f"asymmetry needs square weights (…, T, T), got shape {tuple(weights.shape)}")


def sink_share(weights: Tensor, sinks: Sequence[bool]) -> Tensor:
    """Mean over query tokens of the weight on the key tokens marked in ``sinks`` (``trace.sinks``):
    ``(…, T, S)`` → ``(…)``."""
    _require_weights(weights)
    if len(sinks) != weights.shape[-1]:
        raise ShapeError(f"sinks marks {len(sinks)} tokens for weights of shape {tuple(weights.shape)}")
    mask = torch.tensor(list(sinks), dtype=torch.bool, device=weights.device)  # (S,)
    return (weights * mask.to(weights.dtype)).sum(dim=-1).mean(dim=-1)


@dataclass(frozen=True, eq=False, repr=False)
class HeadMetrics:
    """Every metric for every head of a trace: each tensor is ``(L, H)``, row ``i`` for ``layers[i]``."""

    layers: tuple[int, ...]
    entropy: Tensor
    distance: Tensor
    asymmetry: Tensor
    relative_asymmetry: Tensor
    sink_share: Tensor

    def of(self, layer: int, head: int) -> dict[str, float]:
        """One head's numbers, by model layer and head."""
        if layer not in self.layers:
            raise InputError(f"layer {layer} is not in these metrics; they hold layers {list(self.layers)}")
        index = self.layers.index(layer)
        return {
            name: float(getattr(self, name)[index, head])
            for name in ("entropy", "distance", "asymmetry", "relative_asymmetry", "sink_share")
        }

    def __repr__(self) -> str:
        """One short line: the shape and each metric's range, never the tensors (``.of(layer, head)`` or the
        fields give the numbers): ``HeadMetrics(layers=0…5, heads=12, entropy=0.21…3.87 bits, …)``."""
        heads = int(self.entropy.shape[-1]) if self.entropy.dim() else 0
        return (
            f"HeadMetrics(layers={_cut(_ranges(self.layers), REPR_TEXT)}, heads={heads}, "
            f"entropy={_span(self.entropy)} bits, distance={_span(self.distance, '.1f')} tokens, "
            f"relative_asymmetry={_span(self.relative_asymmetry)}, sink_share={_span(self.sink_share)})"
        )


def _span(values: Tensor, spec: str = ".2f") -> str:
    """``"0.21…3.87"``: the smallest and largest of ``values`` (``"–"`` when there are none)."""
    if values.numel() == 0:
        return "–"
    return f"{float(values.min()):{spec}}…{float(values.max()):{spec}}"


def head_metrics(trace: AttentionTrace) -> HeadMetrics:
    """Entropy, attended distance, asymmetry and sink share of every captured head.

    The same numbers as :func:`entropy`, :func:`attended_distance`, :func:`asymmetry`,
    :func:`relative_asymmetry` and :func:`sink_share` of the weights in float64 (within 1e-6, relative),
    computed one layer at a time so that the passes over a layer's weights stay in the CPU's cache: each row's
    sum is taken in float32 (a row is at most a context's worth of terms) and the rows are added in float64.
    """
    weights = trace.weights  # (L, H, T, S)
    _require_weights(weights)
    L, H, T, S = weights.shape
    if T != S:
        raise ShapeError(f"head metrics need square weights (L, H, T, T), got shape {tuple(weights.shape)}")
    if len(trace.sinks) != S:
        raise ShapeError(f"sinks marks {len(trace.sinks)} tokens for weights of shape {tuple(weights.shape)}")
    positions = torch.arange(T, device=weights.device)
    distance = (positions[:, None] - positions[None, :]).abs().to(torch.float32)  # (T, S)
    sinks = torch.tensor([i for i, sink in enumerate(trace.sinks) if sink], dtype=torch.long, device=weights.device)
    found = torch.empty(5, L, H, dtype=torch.float64, device=weights.device)  # the five metrics, in float64
    for i in range(L):
        layer = weights[i].to(torch.float32)  # (H, T, S)
        found[0, i] = torch.special.xlogy(layer, layer).sum(dim=-1).double().mean(dim=-1).neg() / math.log(2)
        found[1, i] = (layer * distance).sum(dim=-1).double().mean(dim=-1)
        difference = layer - layer.transpose(-1, -2)  # (H, T, T)
        found[2, i] = (difference * difference).sum(dim=-1).double().sum(dim=-1).sqrt()
        norm = (layer * layer).sum(dim=-1).double().sum(dim=-1).sqrt()  # (H,)
        found[3, i] = found[2, i] / (math.sqrt(2.0) * norm).clamp(min=torch.finfo(torch.float64).tiny)
        found[4, i] = layer.index_select(-1, sinks).sum(dim=-1).double().mean(dim=-1)
    entropy_, distance_, asymmetry_, relative, sink = found.to(torch.float32)
    return HeadMetrics(
        layers=trace.layers,
        entropy=entropy_,
        distance=distance_,
        asymmetry=asymmetry_,
        relative_asymmetry=relative,
        sink_share=sink,
    )


def top_attended(weights: Tensor, k: int = 3) -> list[list[tuple[int, float]]]:
    """For each query token of ``(T, S)`` weights, its ``k`` most attended keys: ``[[(key, weight), …], …]``."""
    if weights.dim() != 2:
        raise ShapeError(f"top_attended takes one head's weights (T, S), got shape {tuple(weights.shape)}")
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    values, keys = weights.topk(min(k, weights.shape[-1]), dim=-1)  # (T, k)
    return [
        [(int(key), float(value)) for key, value in zip(row_keys, row_values, strict=True)]
        for row_keys, row_values in zip(keys.tolist(), values.tolist(), strict=True)
    ]


@dataclass(frozen=True)
class Arrow:
    """Query token ``query`` attends to key token ``key`` with ``weight``."""

    query: int
    key: int
    weight: float


def strongest_arrows(
    weights: Tensor,
    *,
    top: int = 10,
    sinks: Sequence[bool] | None = None,
    include_sinks: bool = False,
    include_self: bool = False,
) -> list[Arrow]:
    """The ``top`` strongest query → key pairs of one head's ``(T, S)`` weights, strongest first.

    By default a token attending to itself, and arrows from or to the ``sinks`` (``trace.sinks``, measured apart
    by :func:`sink_share`), are left out: what remains is how the text's own tokens look at each other.
    """
    if weights.dim() != 2:
        raise ShapeError(f"strongest_arrows takes one head's weights (T, S), got shape {tuple(weights.shape)}")
    T, S = weights.shape
    keep = torch.ones(T, S, dtype=torch.bool)
    if not include_self:
        rows = torch.arange(T)
        keep[rows, rows + (S - T)] = False  # query t is key S − T + t
    if sinks is not None and not include_sinks:
        flags = torch.tensor(list(sinks), dtype=torch.bool)  # (S,)
        keep &= ~flags[None, :]
        keep &= ~flags[S - T :, None]
    candidates = weights.detach().cpu().masked_fill(~keep, -1.0).flatten()
    count = min(top, int(keep.sum()))
    values, indices = candidates.topk(count)
    return [
        Arrow(query=index // S, key=index % S, weight=value)
        for index, value in zip(indices.tolist(), values.tolist(), strict=True)
        if value > 0
    ]
