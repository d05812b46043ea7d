"""Parts 2 and 3 on vectors where the idea shows: keys and queries from one real head of MiniLM's first layer.

The article's literal database (:mod:`qkv.article.vectors`: raw embeddings through the first layer's
full-width projections) is real but weak. Raw embeddings are about ten times shorter than what the layer
reads, so their queries and keys barely tell the words apart (softmax gives every word about the even share)
and unit keys' dot products come out negative as often as not. MiniLM never attends on them: its first layer
reads ``LayerNorm(embedding + token type)`` (:meth:`~qkv.article.first_layer.FirstLayer.inputs`) and cuts its
queries and keys into 12 heads of 32 numbers. Each head is a complete instance of the article's Parts 2–3.

:func:`article_head` runs that layer on the words (no positions: the article's words know none), computes every
head's weights ``softmax(q · k / √K)`` and picks the head in which the focus word ("riley") attends to the
other ("dog") most *beyond* the other way round: ``w[riley, dog] − w[dog, riley]`` largest
(:func:`choose_head`). The choice is made from the numbers every time, so the tour can say which head it took
and why; Part 4 shows all of them.

* Part 2 takes that head's keys divided to unit length, the article's ``k`` (:attr:`ArticleHead.unit_keys`);
* Part 3 takes its queries, and its keys at their own lengths, as the model has them;
* values stay the words' meanings, the raw embeddings of Part 1, so "the new v_riley is closer to dog" keeps
  the sense it had there.

A sentence without "riley" and "dog" (the explorer takes any) gets the pair and head with the largest
one-sided weight (:func:`choose_pair`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from qkv.article.beyond import multi_head_attention, split_heads
from qkv.article.vectors import VectorDatabase
from qkv.errors import InputError
from qkv.shapes import ShapeError, Tensor

__all__ = ["FOCUS", "OTHER", "ArticleHead", "LayerRun", "article_head", "choose_head", "choose_pair", "one_sided"]

#: The pair the article reads: "riley" should attend to "dog" more than "dog" to "riley".
FOCUS, OTHER = "riley", "dog"


@dataclass(frozen=True, eq=False)
class LayerRun:
    """MiniLM's first layer on some words: what it reads, its three projections (each ``(T, D)``) and every
    head's weights ``softmax(q · k / √K)`` ``(H, T, S)``."""

    inputs: Tensor  # (T, D): LayerNorm(embedding + token type [+ position])
    queries: Tensor  # (T, D)
    keys: Tensor  # (T, D)
    values: Tensor  # (T, D)
    output: Tensor  # (T, D): the heads' outputs side by side
    weights: Tensor  # (H, T, S)

    @property
    def heads(self) -> int:
        return int(self.weights.shape[0])

    @property
    def head_width(self) -> int:
        """K, the width of one head's queries and keys."""
        return int(self.queries.shape[1]) // self.heads


def run_first_layer(database: VectorDatabase, words: Sequence[str], *, positions: bool = False) -> LayerRun:
    """The first layer of MiniLM on ``words``, one word per position (see :mod:`qkv.article.first_layer`)."""
    layer = database.first_layer()
    inputs = layer.inputs(database.embeddings(words), positions=positions)  # (T, D)
    queries, keys, values = layer.project(inputs)  # (T, D) each
    result = multi_head_attention(queries, keys, values, layer.heads)  # (T, D), (H, T, S)
    return LayerRun(inputs, queries, keys, values, result.output, result.weights)


def one_sided(weights: Tensor) -> Tensor:
    """``(H, T, S)`` → ``(H, T, T)``: ``w[h, a, b] − w[h, b, a]``, how much more ``a`` attends to ``b`` than
    ``b`` to ``a`` in each head (0 on the diagonal; the matrix of a head is antisymmetric)."""
    if weights.dim() != 3 or weights.shape[1] != weights.shape[2]:
        raise ShapeError(f"weights must be (H, T, T), every word a query and a key; got {tuple(weights.shape)}")
    return weights - weights.transpose(-1, -2)  # (H, T, T)


def choose_head(weights: Tensor, focus: int, other: int) -> int:
    """The head of ``weights (H, T, T)`` in which ``focus ⇒ other`` outweighs ``other ⇒ focus`` the most."""
    return int(one_sided(weights)[:, focus, other].argmax())


def choose_pair(words: Sequence[str], weights: Tensor) -> tuple[int, int]:
    """``(focus, other)``: the article's riley and dog when the words hold both, else the pair of different
    positions with the largest one-sided weight in any head of ``weights (H, T, T)``."""
    if FOCUS in words and OTHER in words:
        return list(words).index(FOCUS), list(words).index(OTHER)
    gaps = one_sided(weights)  # (H, T, T)
    T = gaps.shape[1]
    if T < 2:
        raise InputError(f"a pair needs at least two words, got {T}; give a longer sentence")
    gaps = gaps.masked_fill(torch.eye(T, dtype=torch.bool), -torch.inf)  # a word and itself are no pair
    index = int(gaps.flatten().argmax())
    return (index // T) % T, index % T


@dataclass(frozen=True, eq=False)
class ArticleHead:
    """The vectors of Parts 2–3: ``head`` of MiniLM's first layer, chosen for ``focus ⇒ other``."""

    head: int
    focus: int
    other: int
    values: Tensor  # (T, D): the words' raw embeddings, as in Part 1
    queries: Tensor  # (T, K): the head's queries
    keys: Tensor  # (T, K): the head's keys at their own lengths
    layer: LayerRun  # the whole layer, every head

    @property
    def head_width(self) -> int:
        return int(self.queries.shape[1])

    @property
    def unit_keys(self) -> Tensor:
        """``(T, K)``: the head's keys divided by their lengths, Part 2's ``k``."""
        return self.keys / self.keys.norm(dim=-1, keepdim=True)

    @property
    def weights(self) -> Tensor:
        """``(T, S)``: the head's weights ``softmax(q · k / √K)``, Part 3 with softmax and ``1/√K``."""
        return self.layer.weights[self.head]

    @property
    def there(self) -> float:
        """The weight of ``focus ⇒ other`` in the head."""
        return float(self.weights[self.focus, self.other])

    @property
    def back(self) -> float:
        """The weight of ``other ⇒ focus`` in the head."""
        return float(self.weights[self.other, self.focus])


def article_head(database: VectorDatabase, words: Sequence[str]) -> ArticleHead:
    """Run MiniLM's first layer on ``words`` (no positions) and take the head :func:`choose_head` picks for
    the pair :func:`choose_pair` picks."""
    layer = run_first_layer(database, words)
    focus, other = choose_pair(words, layer.weights)
    head = choose_head(layer.weights, focus, other)
    queries, keys = (split_heads(x, layer.heads)[head] for x in (layer.queries, layer.keys))  # (T, K) each
    return ArticleHead(head, focus, other, database.values(words), queries, keys, layer)
