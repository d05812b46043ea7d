"""Parts 2–3's head: MiniLM's first layer recomputed with NumPy picks the same head, pair and weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from qkv.article.one_head import article_head, choose_head, choose_pair, one_sided
from qkv.article.vectors import default_database
from qkv.shapes import ShapeError

from .conftest import NumpyLayer, numpy_first_layer


def test_the_head_is_the_one_where_riley_outweighs_dog_most(numpy_layer: NumpyLayer) -> None:
    riley, dog = numpy_layer.index("riley"), numpy_layer.index("dog")
    weights = numpy_layer.weights
    expected = int(np.argmax(weights[:, riley, dog] - weights[:, dog, riley]))
    chosen = article_head(default_database(), numpy_layer.words)
    assert (chosen.head, chosen.focus, chosen.other) == (expected, riley, dog)
    assert chosen.there == pytest.approx(weights[expected, riley, dog], abs=1e-10)
    assert chosen.back == pytest.approx(weights[expected, dog, riley], abs=1e-10)
    np.testing.assert_allclose(chosen.queries.numpy(), numpy_layer.queries[expected], rtol=0, atol=1e-10)
    np.testing.assert_allclose(chosen.keys.numpy(), numpy_layer.keys[expected], rtol=0, atol=1e-10)
    unit = numpy_layer.keys[expected] / np.linalg.norm(numpy_layer.keys[expected], axis=1, keepdims=True)
    np.testing.assert_allclose(chosen.unit_keys.numpy(), unit, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chosen.values.numpy(), numpy_layer.embeddings, rtol=0, atol=0)


def test_on_the_articles_sentence_the_head_makes_riley_look_at_dog_and_not_back(numpy_layer: NumpyLayer) -> None:
    chosen = article_head(default_database(), numpy_layer.words)
    assert chosen.there > 0.5 > 0.1 > chosen.back  # the article's point, in one real head
    assert int(chosen.weights[chosen.focus].argmax()) == chosen.other


def test_a_sentence_without_riley_and_dog_gets_its_most_one_sided_pair() -> None:
    words = ["the", "cat", "sat", "on", "the", "mat"]
    weights = numpy_first_layer(words).weights
    best = max(
        itertools.product(range(weights.shape[0]), range(len(words)), range(len(words))),
        key=lambda hab: weights[hab[0], hab[1], hab[2]] - weights[hab[0], hab[2], hab[1]],
    )
    chosen = article_head(default_database(), words)
    assert (chosen.head, chosen.focus, chosen.other) == best
    assert chosen.focus != chosen.other


def test_identical_words_still_make_a_pair_of_two_positions() -> None:
    weights = torch.full((3, 2, 2), 0.5, dtype=torch.float64)  # no head prefers anything
    focus, other = choose_pair(["dog", "dog"], weights)
    assert focus != other
    assert choose_pair(["a", "dog", "riley"], weights) == (2, 1)  # the article's pair whenever both are there
    assert choose_head(weights, 0, 1) == 0


def test_one_sided_is_antisymmetric_and_needs_square_weights() -> None:
    weights = torch.softmax(torch.randn(4, 5, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    gaps = one_sided(weights)
    assert torch.equal(gaps, -gaps.transpose(-1, -2))
    with pytest.raises(ShapeError, match=r"\(H, T, T\)"):
        one_sided(torch.zeros(2, 3, 4))
