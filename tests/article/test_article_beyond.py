"""Part 4's numbers (what the article left out) agree with independent computations: NumPy, qkv.attend, the trace."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from safetensors import safe_open

import qkv
from qkv.article.beyond import (
    compare_normalisations,
    head_scores,
    layer_focus,
    merge_heads,
    multi_head_attention,
    sharpness,
    shuffle_check,
    shuffled_difference,
    split_heads,
    top_per_head,
    width_spread,
)
from qkv.article.first_layer import FirstLayer
from qkv.article.part3_queries import query_relevance
from qkv.article.vectors import SENTENCE, default_database, split_words
from qkv.data.metrics import row_entropy
from qkv.data.registry import find_packaged
from qkv.data.trace import AttentionTrace
from qkv.shapes import ShapeError

WORDS = split_words(SENTENCE)


def _softmax(scores: np.ndarray) -> np.ndarray:
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights: np.ndarray = exps / exps.sum(axis=-1, keepdims=True)
    return weights


def _layer() -> FirstLayer:
    return default_database().first_layer()


def _attention(layer: FirstLayer, *, positions: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(embeddings: torch.Tensor) -> torch.Tensor:
        return multi_head_attention(*layer.project(layer.inputs(embeddings, positions=positions)), layer.heads).output

    return run


# -- softmax instead of sum-normalisation ------------------------------------------------------------------


def test_sum_normalisation_and_softmax_match_numpy_on_part3_scores() -> None:
    database = default_database()
    scores = query_relevance(database.queries(WORDS), database.keys(WORDS))
    compared = compare_normalisations(scores)
    S = scores.numpy()
    np.testing.assert_allclose(compared.summed.numpy(), S / S.sum(axis=1, keepdims=True), rtol=0, atol=1e-14)
    np.testing.assert_allclose(compared.softmaxed.numpy(), _softmax(S), rtol=0, atol=1e-14)
    summed = S / S.sum(axis=1, keepdims=True)
    assert compared.negative_rows == int((summed < 0).any(axis=1).sum())
    assert compared.reversed_rows == int((summed.argmax(axis=1) == S.argmin(axis=1)).sum())


def test_a_row_that_sums_below_zero_gives_its_lowest_score_the_most_weight() -> None:
    scores = torch.tensor([[-1.0, -2.0, 0.5], [1.0, 2.0, 3.0]], dtype=torch.float64)
    compared = compare_normalisations(scores)
    assert int(compared.summed[0].argmax()) == 1 and float(compared.summed[0, 2]) < 0  # reversed, negative
    assert compared.reversed_rows == 1 and compared.negative_rows == 1
    assert bool((compared.softmaxed > 0).all()) and int(compared.softmaxed[0].argmax()) == 2


# -- the 1/√K scale ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [8, 64, 512])
def test_the_variance_of_random_dot_products_grows_like_the_width(width: int) -> None:
    spread = width_spread(width, queries=600, keys=10, generator=torch.Generator().manual_seed(1))
    assert spread.variance / width == pytest.approx(1.0, abs=0.12)
    assert spread.scaled_variance == pytest.approx(spread.variance / width, rel=1e-12)


def test_without_the_scale_softmax_sharpens_as_the_width_grows() -> None:
    generator = torch.Generator().manual_seed(2)
    narrow, wide = (width_spread(width, generator=generator) for width in (4, 1024))
    assert wide.unscaled.max_weight > narrow.unscaled.max_weight + 0.2
    assert wide.unscaled.entropy < narrow.unscaled.entropy - 0.5
    assert wide.scaled.max_weight == pytest.approx(narrow.scaled.max_weight, abs=0.05)


def test_sharpness_of_one_hot_and_even_weights() -> None:
    one_hot = torch.eye(4, dtype=torch.float64)
    even = torch.full((3, 8), 1 / 8, dtype=torch.float64)
    assert sharpness(one_hot) == pytest.approx(type(sharpness(one_hot))(max_weight=1.0, entropy=0.0))
    assert sharpness(even).max_weight == pytest.approx(1 / 8)
    assert sharpness(even).entropy == pytest.approx(3.0)
    weights = torch.softmax(torch.randn(5, 7, dtype=torch.float64), dim=-1)
    W = weights.numpy()
    np.testing.assert_allclose(row_entropy(weights).numpy(), -(W * np.log2(W)).sum(axis=-1), rtol=1e-12)


# -- heads ------------------------------------------------------------------------------------------------


def test_split_and_merge_heads_are_inverse_and_refuse_a_bad_width() -> None:
    x = torch.randn(5, 12, dtype=torch.float64)
    assert split_heads(x, 3).shape == (3, 5, 4)
    torch.testing.assert_close(split_heads(x, 3)[1], x[:, 4:8], rtol=0, atol=0)
    torch.testing.assert_close(merge_heads(split_heads(x, 3)), x, rtol=0, atol=0)
    with pytest.raises(ShapeError, match="does not split into 5 heads"):
        split_heads(x, 5)


def test_the_first_layer_heads_are_qkv_attend_per_head() -> None:
    layer = _layer()
    queries, keys, values = layer.project(layer.inputs(default_database().embeddings(WORDS), positions=False))
    result = multi_head_attention(queries, keys, values, layer.heads)
    q, k, v = (x.reshape(len(WORDS), layer.heads, -1).transpose(0, 1)[None] for x in (queries, keys, values))
    output, weights = qkv.attend(q, k, v, need_weights=True)  # (1, H, T, K), (1, H, T, S)
    assert weights is not None
    torch.testing.assert_close(result.weights, weights[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(result.output, output[0].transpose(0, 1).reshape(len(WORDS), -1), rtol=0, atol=1e-12)
    # and each head alone, in NumPy
    Q, K = queries.numpy(), keys.numpy()
    for head in (0, layer.heads - 1):
        columns = slice(head * layer.head_width, (head + 1) * layer.head_width)
        expected = _softmax(Q[:, columns] @ K[:, columns].T / math.sqrt(layer.head_width))
        np.testing.assert_allclose(result.weights[head].numpy(), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(head_scores(queries, keys, layer.heads)[0], queries[:, :32] @ keys[:, :32].T)


def test_top_per_head_is_each_heads_argmax() -> None:
    weights = torch.softmax(torch.randn(4, 6, 6, dtype=torch.float64), dim=-1)
    tops = top_per_head(weights, row=2, k=2)
    for head, top in enumerate(tops):
        order = np.argsort(-weights[head, 2].numpy())[:2]
        assert [index for index, _ in top] == order.tolist()
        assert top[0][1] == pytest.approx(float(weights[head, 2].max()))


def test_the_first_layer_reads_what_minilm_reads() -> None:
    _, model_dir = find_packaged("minilm")
    config = json.loads((model_dir / "config.json").read_text())
    with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as f:
        gamma, beta, types, positions = (
            f.get_tensor(f"embeddings.{name}").astype(np.float64)
            for name in (
                "LayerNorm.weight",
                "LayerNorm.bias",
                "token_type_embeddings.weight",
                "position_embeddings.weight",
            )
        )
    layer = _layer()
    assert (layer.heads, layer.head_width) == (config["num_attention_heads"], 384 // config["num_attention_heads"])
    embeddings = default_database().embeddings(WORDS)
    summed = embeddings.numpy() + types[0] + positions[1 : len(WORDS) + 1]
    mean, var = summed.mean(axis=1, keepdims=True), summed.var(axis=1, keepdims=True)
    expected = (summed - mean) / np.sqrt(var + config["layer_norm_eps"]) * gamma + beta
    np.testing.assert_allclose(layer.inputs(embeddings).numpy(), expected, rtol=0, atol=1e-10)


# -- positions --------------------------------------------------------------------------------------------


def test_without_positions_shuffling_the_words_only_shuffles_the_outputs() -> None:
    layer = _layer()
    embeddings = default_database().embeddings(WORDS)
    order = torch.randperm(len(WORDS), generator=torch.Generator().manual_seed(3)).tolist()
    without, with_ = (_attention(layer, positions=p) for p in (False, True))
    check = shuffle_check(embeddings, order, without, with_)
    # independently: run the shuffled sentence, put the rows back, compare
    index = torch.tensor(order)
    shuffled = without(embeddings[index])
    back = torch.empty_like(shuffled)
    back[index] = shuffled
    torch.testing.assert_close(back, without(embeddings), rtol=0, atol=1e-10)
    assert check.without_positions <= 1e-10
    shuffled_with = with_(embeddings[index])
    back_with = torch.empty_like(shuffled_with)
    back_with[index] = shuffled_with
    gap = float((back_with - with_(embeddings)).abs().max())
    assert gap > 1e-2
    assert check.with_positions == pytest.approx(gap, rel=1e-12)


def test_a_shuffle_must_be_a_permutation() -> None:
    with pytest.raises(ValueError, match="permutation"):
        shuffled_difference(lambda x: x, torch.zeros(3, 2), [0, 0, 1])


# -- stacking ---------------------------------------------------------------------------------------------


def test_layer_focus_agrees_with_the_trace_weights(minilm_trace: AttentionTrace) -> None:
    labels = minilm_trace.labels
    riley = labels.index("Riley")
    focus = layer_focus(minilm_trace.weights, minilm_trace.layers, minilm_trace.special, riley, top=2)
    assert [entry.layer for entry in focus] == list(range(6))
    weights = minilm_trace.weights.double().numpy()  # (L, H, T, S)
    special = np.array(minilm_trace.special)
    for entry in focus:
        rows = weights[entry.layer, :, riley]  # (H, S)
        mean = rows.mean(axis=0)
        text = np.where(special, -np.inf, mean)
        expected_top = np.argsort(-text)[:2]
        assert [index for index, _ in entry.top] == expected_top.tolist()
        assert entry.top[0][1] == pytest.approx(mean[expected_top[0]], abs=1e-12)
        assert entry.special_share == pytest.approx(mean[special].sum(), abs=1e-12)
        assert entry.entropy == pytest.approx(float(-(rows * np.log2(rows)).sum(axis=-1).mean()), abs=1e-9)


def test_layer_focus_refuses_mismatched_shapes() -> None:
    with pytest.raises(ShapeError, match=r"\(L, H, T, S\)"):
        layer_focus(torch.zeros(2, 1, 3, 3), (0,), (False,) * 3, 0)
