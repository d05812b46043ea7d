"""Part 3: queries make relevance asymmetric; with softmax and 1/√K it is exactly qkv.attend."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import qkv
from qkv.article import get_keys, get_queries, get_values, split_words
from qkv.article.part2_keys import ArticleMathError, key_relevance, normalise
from qkv.article.part3_queries import part3_attention, part3_via_attend, part3_with_softmax, query_relevance
from qkv.article.vectors import SENTENCE

WORDS = split_words(SENTENCE)


def _sentence() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return get_queries(WORDS), get_keys(WORDS), get_values(WORDS)  # (T, D) each


def _softmax(scores: np.ndarray) -> np.ndarray:
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights: np.ndarray = exps / exps.sum(axis=-1, keepdims=True)
    return weights


def test_part3_relevance_is_not_symmetric_for_generic_queries() -> None:
    queries, keys, _ = _sentence()
    scores = query_relevance(queries, keys)
    riley, dog = WORDS.index("riley"), WORDS.index("dog")
    assert float(scores[riley, dog]) != pytest.approx(float(scores[dog, riley]), abs=1e-6)
    generic = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    other = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert float((query_relevance(generic, other) - query_relevance(generic, other).T).abs().max()) > 0.1


def test_part3_with_queries_equal_to_keys_is_part2() -> None:
    _, keys, _ = _sentence()
    torch.testing.assert_close(query_relevance(keys, keys), key_relevance(keys), rtol=0, atol=0)


def test_part3_attention_matches_numpy_on_positive_relevances() -> None:
    rng = np.random.default_rng(2)
    Q, K, V = np.abs(rng.normal(size=(4, 6))), np.abs(rng.normal(size=(5, 6))), rng.normal(size=(5, 3))
    relevances = Q @ K.T
    expected_weights = relevances / relevances.sum(axis=1, keepdims=True)
    new_V, weights = part3_attention(torch.from_numpy(Q), torch.from_numpy(K), torch.from_numpy(V))
    np.testing.assert_allclose(weights.numpy(), expected_weights, atol=1e-15)
    np.testing.assert_allclose(weights.sum(dim=-1).numpy(), 1.0, atol=1e-14)
    np.testing.assert_allclose(new_V.numpy(), expected_weights @ V, atol=1e-14)


def test_the_articles_literal_numpy_normalises_columns_not_rows() -> None:
    rng = np.random.default_rng(3)
    relevances = np.abs(rng.normal(size=(4, 4)))
    literal = relevances / relevances.sum(axis=1)  # as printed in the article: broadcasts over columns
    assert not np.allclose(literal.sum(axis=1), 1.0)
    ours = normalise(torch.from_numpy(relevances))  # keeps the summed axis: rows sum to 1
    np.testing.assert_allclose(ours.sum(dim=-1).numpy(), 1.0)


def test_part3_sum_normalisation_fails_loudly_on_the_real_sentence() -> None:
    queries, keys, values = _sentence()
    if bool((query_relevance(queries, keys) >= 0).all()):
        pytest.skip("these vectors give no negative relevance")
    with pytest.raises(ArticleMathError, match="relevances ≥ 0"):
        part3_attention(queries, keys, values)


def test_part3_with_softmax_matches_numpy() -> None:
    queries, keys, values = _sentence()
    Q, K, V = queries.numpy(), keys.numpy(), values.numpy()
    expected_weights = _softmax(Q @ K.T / math.sqrt(Q.shape[1]))
    new_V, weights = part3_with_softmax(queries, keys, values)
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=0, atol=1e-14)
    np.testing.assert_allclose(new_V.numpy(), expected_weights @ V, rtol=0, atol=1e-14)
    np.testing.assert_allclose(weights.sum(dim=-1).numpy(), 1.0, atol=1e-14)
    assert bool((weights > 0).all())


def test_an_explicit_scale_replaces_one_over_root_k() -> None:
    queries, keys, values = _sentence()
    Q, K = queries.numpy(), keys.numpy()
    _, weights = part3_with_softmax(queries, keys, values, scale=1.0)
    np.testing.assert_allclose(weights.numpy(), _softmax(Q @ K.T), rtol=0, atol=1e-14)


@pytest.mark.parametrize("need_weights", [True, False], ids=["exact path", "fused path"])
def test_part3_with_softmax_and_scale_is_exactly_qkv_attend(need_weights: bool) -> None:
    queries, keys, values = _sentence()
    new_V, weights = part3_with_softmax(queries, keys, values)
    output, attend_weights = qkv.attend(
        queries[None, None], keys[None, None], values[None, None], need_weights=need_weights
    )  # (1, 1, T, D)
    torch.testing.assert_close(output[0, 0], new_V, rtol=0, atol=1e-12)
    if need_weights:
        assert attend_weights is not None
        torch.testing.assert_close(attend_weights[0, 0], weights, rtol=0, atol=1e-14)
    via, via_weights = part3_via_attend(queries, keys, values, need_weights=need_weights)
    torch.testing.assert_close(via, new_V, rtol=0, atol=1e-12)
    assert (via_weights is not None) == need_weights


def test_part3_with_softmax_matches_pytorch_sdpa_in_float32() -> None:
    generator = torch.Generator().manual_seed(4)
    queries, keys, values = (torch.randn(7, 16, generator=generator) for _ in range(3))
    expected = F.scaled_dot_product_attention(queries[None], keys[None], values[None])[0]
    new_V, _ = part3_with_softmax(queries, keys, values)
    torch.testing.assert_close(new_V, expected, rtol=1e-5, atol=1e-6)
