"""Part 1: fixed-ratio mixing, checked against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qkv.article import get_value, get_values, split_words
from qkv.article.part1_mixing import cosine_similarity, fixed_ratio_weights, mix, mix_every_pair
from qkv.article.vectors import SENTENCE


def test_mix_is_the_articles_linear_combination() -> None:
    v_riley, v_dog = get_value("riley"), get_value("dog")
    expected = 0.75 * v_riley.numpy() + (1 - 0.75) * v_dog.numpy()
    np.testing.assert_allclose(mix(v_riley, v_dog, ratio=0.75).numpy(), expected, rtol=0, atol=1e-15)


def test_mixing_in_dog_moves_riley_towards_dog() -> None:
    v_riley, v_dog = get_value("riley"), get_value("dog")
    assert cosine_similarity(mix(v_riley, v_dog), v_dog) > cosine_similarity(v_riley, v_dog)


def test_ratio_one_keeps_riley_and_ratio_zero_replaces_it() -> None:
    v_riley, v_dog = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    torch.testing.assert_close(mix(v_riley, v_dog, ratio=1.0), v_riley)
    torch.testing.assert_close(mix(v_riley, v_dog, ratio=0.0), v_dog)


def test_a_ratio_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="ratio"):
        mix(torch.zeros(3), torch.zeros(3), ratio=1.5)


def test_cosine_similarity_matches_numpy() -> None:
    a, b = np.random.default_rng(0).normal(size=(2, 16))
    expected = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert float(cosine_similarity(torch.from_numpy(a), torch.from_numpy(b))) == pytest.approx(expected, abs=1e-14)


def test_fixed_ratio_weights_rows_sum_to_one_and_ignore_the_words() -> None:
    weights = fixed_ratio_weights(5, 0.75).numpy()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(np.diag(weights), 0.75)
    np.testing.assert_allclose(weights[~np.eye(5, dtype=bool)], 0.25 / 4)


def test_mixing_every_pair_matches_numpy() -> None:
    values = get_values(split_words(SENTENCE))  # (T, D)
    v = values.numpy()
    T = v.shape[0]
    expected = np.stack([0.75 * v[i] + 0.25 * (v.sum(axis=0) - v[i]) / (T - 1) for i in range(T)])
    np.testing.assert_allclose(mix_every_pair(values, 0.75).numpy(), expected, rtol=0, atol=1e-14)
