"""What the article left out, as numbers: softmax, the ``1/√K`` scale, heads, positions and stacked layers.

Small pure functions over tensors; the tour (Part 4) prints what they return, and the tests check each
against an independent computation. None of them loads anything: the callers pass MiniLM's vectors
(:mod:`qkv.article.vectors`, :mod:`qkv.article.first_layer`) or a trace of the whole model. Entropy and the
most attended words are the shared metrics of :mod:`qkv.data.metrics`, the numbers ``qkv attend`` prints.

* :func:`compare_normalisations` — the article's ``relevances / sum`` beside ``softmax`` on the same scores;
* :func:`width_spread` and :func:`sharpness` — a dot product of ``K`` terms has variance ``K``, and softmax
  of such scores drifts towards one-hot unless they are scaled by ``1/√K``;
* :func:`multi_head_attention` and :func:`top_per_head` — the width split into heads that attend apart;
* :func:`shuffle_check` — without positions, shuffling the words only shuffles the outputs;
* :func:`layer_focus` — how one token's attention changes from layer to layer of a real model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from qkv.data.metrics import row_entropy, top_attended
from qkv.shapes import ShapeError, Tensor

__all__ = [
    "LayerFocus",
    "MultiHead",
    "NormalisationComparison",
    "Sharpness",
    "ShuffleCheck",
    "WidthSpread",
    "compare_normalisations",
    "head_scores",
    "layer_focus",
    "merge_heads",
    "multi_head_attention",
    "sharpness",
    "shuffle_check",
    "shuffled_difference",
    "split_heads",
    "top_per_head",
    "width_spread",
]


# -- softmax instead of sum-normalisation ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NormalisationComparison:
    """The same scores ``(T, S)`` turned into weights two ways: divided by their row sums, and softmaxed."""

    scores: Tensor  # (T, S)
    summed: Tensor  # (T, S): scores / row sum, the article's normalisation
    softmaxed: Tensor  # (T, S): exp(score) / Σ exp(scores)

    @property
    def negative_rows(self) -> int:
        """Rows in which sum-normalising gives some word a negative weight (its value is subtracted)."""
        return int((self.summed < 0).any(dim=-1).sum())

    @property
    def reversed_rows(self) -> int:
        """Rows in which sum-normalising gives the most weight to the word with the *lowest* score."""
        return int((self.summed.argmax(dim=-1) == self.scores.argmin(dim=-1)).sum())


def compare_normalisations(scores: Tensor) -> NormalisationComparison:
    """Sum-normalisation (``strict=False``: it divides whatever the signs) beside softmax, row by row."""
    if scores.dim() != 2:
        raise ShapeError(f"scores must be (T, S), got {tuple(scores.shape)}")
    summed = scores / scores.sum(dim=-1, keepdim=True)  # (T, S) / (T, 1)
    return NormalisationComparison(scores, summed, torch.softmax(scores, dim=-1))


# -- the 1/√K scale ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sharpness:
    """How concentrated softmax weights are, averaged over rows: the largest weight, and the entropy in bits
    (``log2 S`` for an even spread over ``S`` words, 0 for one-hot)."""

    max_weight: float
    entropy: float


def sharpness(weights: Tensor) -> Sharpness:
    """:class:`Sharpness` of weights ``(…, T, S)`` whose rows sum to 1."""
    return Sharpness(
        max_weight=float(weights.max(dim=-1).values.mean()),
        entropy=float(row_entropy(weights).mean()),
    )


@dataclass(frozen=True)
class WidthSpread:
    """Dot products of random vectors of one width ``K``, each component drawn with variance 1."""

    width: int
    variance: float  # var(q · k): grows like K
    scaled_variance: float  # var(q · k / √K): stays near 1
    unscaled: Sharpness  # softmax(q · k) over `keys` keys
    scaled: Sharpness  # softmax(q · k / √K)


def width_spread(width: int, *, queries: int = 400, keys: int = 10, generator: torch.Generator) -> WidthSpread:
    """Draw ``queries`` random queries and ``keys`` random keys per query, of width ``width``; measure the
    scores' variance and the softmax's sharpness, without and with ``1/√K``."""
    if width < 1 or queries < 2 or keys < 2:
        raise ShapeError(f"need width ≥ 1, queries ≥ 2 and keys ≥ 2; got {width}, {queries}, {keys}")
    q = torch.randn(queries, 1, width, generator=generator, dtype=torch.float64)  # (N, 1, K)
    k = torch.randn(queries, keys, width, generator=generator, dtype=torch.float64)  # (N, S, K)
    scores = (q * k).sum(dim=-1)  # (N, S): one row of scores per query
    scaled = scores / math.sqrt(width)
    return WidthSpread(
        width=width,
        variance=float(scores.var()),
        scaled_variance=float(scaled.var()),
        unscaled=sharpness(torch.softmax(scores, dim=-1)),
        scaled=sharpness(torch.softmax(scaled, dim=-1)),
    )


# -- heads ------------------------------------------------------------------------------------------------


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(T, D)`` → ``(H, T, K)`` with ``K = D / H``: head ``h`` gets columns ``h·K … (h+1)·K − 1``."""
    T, D = x.shape
    if heads < 1 or D % heads:
        raise ShapeError(f"width {D} does not split into {heads} heads")
    return x.reshape(T, heads, D // heads).transpose(0, 1)  # (T, H, K) → (H, T, K)


def merge_heads(x: Tensor) -> Tensor:
    """``(H, T, K)`` → ``(T, H·K)``: the heads' outputs side by side again."""
    H, T, K = x.shape
    return x.transpose(0, 1).reshape(T, H * K)  # (T, H, K) → (T, D)


def head_scores(queries: Tensor, keys: Tensor, heads: int) -> Tensor:
    """``(H, T, S)``: every head's unscaled scores ``q_h · k_h`` for ``queries (T, D)`` and ``keys (S, D)``."""
    return split_heads(queries, heads) @ split_heads(keys, heads).transpose(-1, -2)  # (H, T, K) @ (H, K, S)


@dataclass(frozen=True, eq=False)
class MultiHead:
    """Every head's output side by side ``(T, D)`` and every head's weights ``(H, T, S)``."""

    output: Tensor
    weights: Tensor


def multi_head_attention(queries: Tensor, keys: Tensor, values: Tensor, heads: int) -> MultiHead:
    """Part 3 with softmax and ``1/√K``, once per head: ``queries (T, D)``, ``keys`` and ``values (S, D)``."""
    if queries.dim() != 2 or keys.shape != values.shape or queries.shape[1] != keys.shape[1]:
        raise ShapeError(
            f"queries (T, D), keys and values (S, D): got {tuple(queries.shape)}, {tuple(keys.shape)}, "
            f"{tuple(values.shape)}"
        )
    scores = head_scores(queries, keys, heads) / math.sqrt(queries.shape[1] // heads)  # (H, T, S)
    weights = torch.softmax(scores, dim=-1)  # (H, T, S)
    return MultiHead(output=merge_heads(weights @ split_heads(values, heads)), weights=weights)  # (T, D)


def top_per_head(weights: Tensor, row: int, k: int = 1) -> list[list[tuple[int, float]]]:
    """For each head of ``weights (H, T, S)``, the ``k`` words row ``row`` attends to most: ``(word, weight)``."""
    return top_attended(weights[:, row], k)  # (H, S): each head's row, as the rows of one matrix


# -- positions --------------------------------------------------------------------------------------------


def shuffled_difference(layer: Callable[[Tensor], Tensor], embeddings: Tensor, order: Sequence[int]) -> float:
    """``max |layer(x[order]) − layer(x)[order]|``: 0 when shuffling the words only shuffles the outputs.

    ``layer`` maps word embeddings ``(T, D)`` to outputs ``(T, D)``; if it adds positions, it adds them by
    slot, so a word that moves gets a new position.
    """
    index = torch.as_tensor(list(order), dtype=torch.long)
    if sorted(index.tolist()) != list(range(embeddings.shape[0])):
        raise ShapeError(f"order must be a permutation of 0…{embeddings.shape[0] - 1}, got {list(order)}")
    return float((layer(embeddings[index]) - layer(embeddings)[index]).abs().max())


@dataclass(frozen=True)
class ShuffleCheck:
    """What shuffling the words does to a layer's outputs, once without position vectors and once with."""

    order: tuple[int, ...]
    without_positions: float  # max |difference| after un-shuffling: ~0
    with_positions: float  # large: the outputs changed, not just moved
    output_scale: float  # max |output| of the unshuffled sentence, for scale


def shuffle_check(
    embeddings: Tensor,
    order: Sequence[int],
    without_positions: Callable[[Tensor], Tensor],
    with_positions: Callable[[Tensor], Tensor],
) -> ShuffleCheck:
    """:func:`shuffled_difference` for the same layer run without and with position vectors."""
    return ShuffleCheck(
        order=tuple(int(i) for i in order),
        without_positions=shuffled_difference(without_positions, embeddings, order),
        with_positions=shuffled_difference(with_positions, embeddings, order),
        output_scale=float(with_positions(embeddings).abs().max()),
    )


# -- stacking ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerFocus:
    """Where one token looks in one layer of a model, with its heads averaged."""

    layer: int
    top: tuple[tuple[int, float], ...]  # the text tokens it attends to most (special tokens left out)
    special_share: float  # the weight that goes to special tokens ([CLS], [SEP])
    entropy: float  # its row's entropy in bits, averaged over the heads


def layer_focus(
    weights: Tensor, layers: Sequence[int], special: Sequence[bool], row: int, *, top: int = 2
) -> tuple[LayerFocus, ...]:
    """One :class:`LayerFocus` per layer of ``weights (L, H, T, S)`` for query token ``row``."""
    if weights.dim() != 4 or len(layers) != weights.shape[0] or len(special) != weights.shape[-1]:
        raise ShapeError(
            f"weights must be (L, H, T, S) with {len(layers)} layers and {len(special)} tokens, "
            f"got {tuple(weights.shape)}"
        )
    rows = weights[:, :, row].double()  # (L, H, S)
    mean = rows.mean(dim=1)  # (L, S): the heads averaged
    is_special = torch.tensor(list(special), dtype=torch.bool)  # (S,)
    text = mean.masked_fill(is_special, -1.0)  # special tokens can never be on top
    count = min(top, int((~is_special).sum()))
    values, indices = text.topk(count, dim=-1)  # (L, top)
    return tuple(
        LayerFocus(
            layer=int(layer),
            top=tuple((int(i), float(w)) for i, w in zip(indices[n].tolist(), values[n].tolist(), strict=True)),
            special_share=float(mean[n][is_special].sum()),
            entropy=float(row_entropy(rows[n]).mean()),
        )
        for n, layer in enumerate(layers)
    )
