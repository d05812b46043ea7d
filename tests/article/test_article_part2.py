"""Part 2: unit keys, symmetric relevance, sum-normalisation (and where it breaks), checked against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qkv.article import get_keys, get_values, split_words
from qkv.article.part2_keys import (
    ArticleMathError,
    check_normalisation,
    key_relevance,
    normalise,
    pair_update,
    part2_attention,
    part2_update,
    relevance,
)
from qkv.article.vectors import SENTENCE

WORDS = split_words(SENTENCE)


def _unit(rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rows / np.linalg.norm(rows, axis=-1, keepdims=True))


def test_part2_relevance_is_symmetric() -> None:
    relevances = key_relevance(get_keys(WORDS)).numpy()
    np.testing.assert_array_equal(relevances, relevances.T)
    keys = get_keys(["riley", "dog"])
    assert float(relevance(keys[0], keys[1])) == float(relevance(keys[1], keys[0]))


def test_key_relevance_matches_numpy() -> None:
    keys = get_keys(WORDS)
    np.testing.assert_allclose(key_relevance(keys).numpy(), keys.numpy() @ keys.numpy().T, rtol=0, atol=1e-15)


def test_unit_keys_dot_products_lie_in_minus_one_one_with_one_on_the_diagonal() -> None:
    relevances = key_relevance(get_keys(WORDS))
    assert float(relevances.abs().max()) <= 1 + 1e-12
    np.testing.assert_allclose(torch.diagonal(relevances).numpy(), 1.0, atol=1e-12)


def test_keys_that_are_not_unit_are_refused() -> None:
    with pytest.raises(ArticleMathError, match="unit keys"):
        key_relevance(torch.randn(4, 8, dtype=torch.float64) * 3)


def test_normalised_rows_sum_to_one() -> None:
    relevances = torch.rand(6, 9, dtype=torch.float64) + 0.01  # all positive: the article's case
    weights = normalise(relevances)
    np.testing.assert_allclose(weights.sum(dim=-1).numpy(), 1.0, atol=1e-14)
    np.testing.assert_allclose(
        weights.numpy(), relevances.numpy() / relevances.numpy().sum(axis=1, keepdims=True), atol=1e-15
    )
    assert check_normalisation(relevances).ok


def test_a_near_zero_row_sum_is_detected() -> None:
    keys = _unit(np.array([[1.0, 0.0], [-1.0, 1e-3]]))  # opposite keys: the row sums to ~0
    relevances = key_relevance(keys)
    report = check_normalisation(relevances)
    assert report.near_zero_rows == (0, 1)
    assert float(report.amplification.min()) > 1e5
    with pytest.raises(ArticleMathError, match="nearly 0"):
        normalise(relevances)


def test_an_exactly_zero_row_sum_is_detected() -> None:
    relevances = torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert check_normalisation(relevances).near_zero_rows == (0,)
    with pytest.raises(ArticleMathError, match="nearly 0"):
        normalise(relevances)


def test_a_negative_row_sum_that_flips_every_sign_is_detected() -> None:
    keys = _unit(np.array([[1.0, 0.0], [-1.0, 0.1], [-1.0, -0.1]]))  # row 0: 1 - 0.995 - 0.995 < 0
    relevances = key_relevance(keys)
    assert float(relevances[0].sum()) < 0
    report = check_normalisation(relevances)
    assert 0 in report.flipped_rows
    with pytest.raises(ArticleMathError, match="flips the sign"):
        normalise(relevances)
    # Dividing anyway: the row still sums to 1, but the word's own weight has turned negative.
    weights = normalise(relevances, strict=False)
    assert float(weights[0, 0]) < 0
    assert float(weights[0].sum()) == pytest.approx(1.0)


def test_a_single_negative_relevance_is_detected() -> None:
    relevances = torch.tensor([1.0, 0.5, -0.2], dtype=torch.float64)
    report = check_normalisation(relevances)
    assert report.negative_rows == (0,) and report.negative_count == 1 and not report.flipped_rows
    assert report.most_negative == pytest.approx(-0.2)
    with pytest.raises(ArticleMathError, match="negative"):
        normalise(relevances)


def test_pair_update_is_the_articles_formula() -> None:
    v_riley, v_dog = get_values(["riley", "dog"])
    k_riley, k_dog = get_keys(["riley", "dog"])
    r = float(k_riley @ k_dog)
    expected = r * v_riley.numpy() + (1 - r) * v_dog.numpy()
    np.testing.assert_allclose(pair_update(v_riley, v_dog, relevance(k_riley, k_dog)).numpy(), expected, atol=1e-15)


def test_part2_update_matches_numpy() -> None:
    values, keys = get_values(WORDS), get_keys(WORDS)
    v, k = values.numpy(), keys.numpy()
    riley = WORDS.index("riley")
    relevances = np.array([k[riley] @ key for key in k])  # the article's list comprehension
    relevances = relevances / relevances.sum()
    new_value, weights = part2_update(values, keys, riley, strict=False)
    np.testing.assert_allclose(weights.numpy(), relevances, atol=1e-14)
    np.testing.assert_allclose(new_value.numpy(), relevances @ v, atol=1e-13)


def test_part2_attention_matches_numpy_on_positive_relevances() -> None:
    rng = np.random.default_rng(1)
    keys = _unit(np.abs(rng.normal(size=(5, 8))))  # non-negative keys: every relevance ≥ 0
    values = torch.from_numpy(rng.normal(size=(5, 3)))
    relevances = keys.numpy() @ keys.numpy().T
    expected_weights = relevances / relevances.sum(axis=1, keepdims=True)
    new_values, weights = part2_attention(values, keys)
    np.testing.assert_allclose(weights.numpy(), expected_weights, atol=1e-15)
    np.testing.assert_allclose(new_values.numpy(), expected_weights @ values.numpy(), atol=1e-14)
