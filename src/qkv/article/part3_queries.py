"""Part 3 of the article: a third vector, the query, makes relevance asymmetric.

When "riley" attends to "dog", the relevance is ``q_riley · k_dog``; the other way round it is
``q_dog · k_riley``, a different number. For the whole sentence at once::

    relevances = Q @ K.T                       # (T, S): row t says how much word t cares about each word
    new_V = normalise(relevances) @ V          # (T, D)

That is :func:`part3_attention`. It inherits Part 2's normalisation problem, worse: queries are not unit
vectors, so relevances are unbounded and rows often sum to a negative number or to nearly zero.

The article's literal ``relevances / relevances.sum(axis=1)`` has a second slip: in NumPy, dividing a
``(T, S)`` matrix by a ``(T,)`` vector broadcasts over *columns* (column ``j`` is divided by row ``j``'s
sum). Row sums need ``keepdims=True``; :func:`~qkv.article.part2_keys.normalise` keeps the axis.

**The final link** (what the article calls "some details I left out"): replace the division by a softmax,
which turns any scores into positive weights that sum to 1, and scale the scores by ``1/√K`` so that their
spread does not grow with the width ``K`` (a dot product of ``K`` terms has a spread that grows like ``√K``,
which would push softmax towards one-hot). That is :func:`part3_with_softmax`, and it is exactly
``qkv.attend`` with one batch and one head: :func:`part3_via_attend` shows the reshape, and the tests prove
the numbers agree on both of ``attend``'s paths.
"""

from __future__ import annotations

import math

import torch

from qkv.article.part2_keys import normalise
from qkv.attention.kernels import attend
from qkv.shapes import ShapeError, Tensor

__all__ = ["part3_attention", "part3_via_attend", "part3_with_softmax", "query_relevance"]


def _check(queries: Tensor, keys: Tensor, values: Tensor | None = None) -> None:
    shapes = f"queries {tuple(queries.shape)}, keys {tuple(keys.shape)}"
    if values is not None:
        shapes += f", values {tuple(values.shape)}"
    if queries.dim() != 2 or keys.dim() != 2 or (values is not None and values.dim() != 2):
        raise ShapeError(f"Part 3 takes queries (T, K), keys (S, K), values (S, D): got {shapes}")
    if queries.shape[1] != keys.shape[1]:
        raise ShapeError(f"queries and keys need the same width K: {shapes}")
    if values is not None and values.shape[0] != keys.shape[0]:
        raise ShapeError(f"keys and values need one row per word S: {shapes}")


def query_relevance(queries: Tensor, keys: Tensor) -> Tensor:
    """``(T, S)``: ``Q @ Kᵀ``. Entry ``[t, s]`` is ``q_t · k_s``, how much word ``t`` attends to word ``s``.

    Not symmetric: ``[riley, dog]`` is ``q_riley · k_dog`` while ``[dog, riley]`` is ``q_dog · k_riley``.
    """
    _check(queries, keys)
    return queries @ keys.T  # (T, K) @ (K, S) → (T, S)


def part3_attention(queries: Tensor, keys: Tensor, values: Tensor, *, strict: bool = True) -> tuple[Tensor, Tensor]:
    """The article's Part 3: ``new_V = normalise(Q @ Kᵀ) @ V``. Returns ``(new_V (T, D), weights (T, S))``.

    Uses Part 2's sum-normalisation, so by default it raises
    :class:`~qkv.article.part2_keys.ArticleMathError` when a row has negative relevances or a sum near or
    below zero (which real queries and keys produce); ``strict=False`` divides anyway.
    """
    _check(queries, keys, values)
    relevances = query_relevance(queries, keys)  # (T, S)
    weights = normalise(relevances, strict=strict)  # (T, S), each row sums to 1
    return weights @ values, weights  # (T, D)


def part3_with_softmax(
    queries: Tensor, keys: Tensor, values: Tensor, *, scale: float | None = None
) -> tuple[Tensor, Tensor]:
    """Part 3 with the two details the article left out: ``softmax(Q Kᵀ · scale) @ V``, scale ``1/√K``.

    Returns ``(new_V (T, D), weights (T, S))``. Softmax is ``exp(score) / sum(exp(scores))`` along a row:
    every weight is positive, so no sign flips and no division by ~0, and the rows sum to 1.
    """
    _check(queries, keys, values)
    scale = 1.0 / math.sqrt(queries.shape[1]) if scale is None else scale
    scores = query_relevance(queries, keys) * scale  # (T, S)
    weights = torch.softmax(scores, dim=-1)  # (T, S), positive, rows sum to 1
    return weights @ values, weights  # (T, D)


def part3_via_attend(
    queries: Tensor, keys: Tensor, values: Tensor, *, scale: float | None = None, need_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    """:func:`part3_with_softmax` computed by ``qkv.attend``: the article's sentence is one batch, one head.

    ``need_weights=True`` takes ``attend``'s exact path and returns the ``(T, S)`` weights;
    ``need_weights=False`` takes the fused path (PyTorch's ``scaled_dot_product_attention``) and returns
    ``None`` for them.
    """
    _check(queries, keys, values)
    output, weights = attend(
        queries[None, None],  # (T, K) → (B=1, H=1, T, K)
        keys[None, None],  # (S, K) → (B=1, G=1, S, K)
        values[None, None],  # (S, D) → (B=1, G=1, S, D)
        scale=scale,
        need_weights=need_weights,
    )
    new_values = output[0, 0]  # (1, 1, T, D) → (T, D)
    return new_values, None if weights is None else weights[0, 0]  # (T, S)
