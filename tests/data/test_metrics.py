"""Head metrics on weights whose answers are known by hand."""

from __future__ import annotations

import math

import pytest
import torch

from qkv.data.metrics import (
    Arrow,
    asymmetry,
    attended_distance,
    entropy,
    head_metrics,
    relative_asymmetry,
    row_entropy,
    sink_share,
    strongest_arrows,
    top_attended,
)
from qkv.data.trace import AttentionTrace
from qkv.errors import ShapeError

T = 6
IDENTITY = torch.eye(T)
UNIFORM = torch.full((T, T), 1 / T)
PREVIOUS = torch.diag(torch.ones(T - 1), -1) + torch.diag(torch.tensor([1.0] + [0.0] * (T - 1)))  # t → t − 1


def test_row_entropy_is_each_rows_entropy_in_bits_and_entropy_their_mean() -> None:
    weights = torch.softmax(torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    by_hand = torch.tensor(
        [[-sum(w * math.log2(w) for w in row.tolist()) for row in head] for head in weights], dtype=torch.float64
    )
    assert torch.allclose(row_entropy(weights), by_hand, rtol=1e-12, atol=0)  # (2, 5)
    assert torch.allclose(entropy(weights), by_hand.mean(dim=-1), rtol=1e-12, atol=0)  # (2,)
    assert float(row_entropy(torch.tensor([0.0, 1.0, 0.0]))) == 0  # 0 · log 0 counts as 0


def test_looking_only_at_yourself_has_no_entropy_no_distance_and_no_asymmetry() -> None:
    assert float(entropy(IDENTITY)) == 0 and float(attended_distance(IDENTITY)) == 0
    assert float(asymmetry(IDENTITY)) == 0 and float(relative_asymmetry(IDENTITY)) == 0


def test_spreading_evenly_over_n_tokens_is_log2_n_bits_and_symmetric() -> None:
    assert float(entropy(UNIFORM)) == pytest.approx(math.log2(T))
    assert float(asymmetry(UNIFORM)) == 0
    assert float(attended_distance(UNIFORM)) == pytest.approx(
        sum(abs(t - s) for t in range(T) for s in range(T)) / T**2
    )


def test_looking_at_the_previous_token_is_distance_one_and_almost_wholly_asymmetric() -> None:
    assert float(attended_distance(PREVIOUS)) == pytest.approx((T - 1) / T)  # token 0 can only look at itself
    assert float(asymmetry(PREVIOUS)) == pytest.approx(math.sqrt(2 * (T - 1)))
    assert float(relative_asymmetry(PREVIOUS)) == pytest.approx(math.sqrt((T - 1) / T))


def test_sink_share_is_the_mean_weight_on_the_sink_tokens() -> None:
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.2, 0.6]])
    assert float(sink_share(weights, [True, False, False])) == pytest.approx((1.0 + 0.5 + 0.2) / 3)
    assert float(sink_share(weights, [True, False, True])) == pytest.approx((1.0 + 0.5 + 0.8) / 3)
    with pytest.raises(ShapeError, match="sinks marks 2 tokens"):
        sink_share(weights, [True, False])


def test_every_metric_reduces_the_last_two_dimensions_and_matches_one_head_at_a_time() -> None:
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    weights = torch.softmax(torch.randn(2, 3, T, T).masked_fill(future, float("-inf")), dim=-1)  # (L, H, T, S)
    special = (False, False, True, False, False, False)
    metrics = head_metrics(AttentionTrace(weights, tuple("abcdef"), (4, 5), "abcdef", special=special))
    sinks = (True, False, True, False, False, False)  # causal, and its first token is not special: a sink too
    assert metrics.entropy.shape == (2, 3) and metrics.layers == (4, 5)
    one = weights[1, 2].double()
    assert metrics.of(5, 2) == pytest.approx(
        {
            "entropy": float(entropy(one)),
            "distance": float(attended_distance(one)),
            "asymmetry": float(asymmetry(one)),
            "relative_asymmetry": float(relative_asymmetry(one)),
            "sink_share": float(sink_share(one, sinks)),
        },
        rel=1e-6,
    )


@pytest.mark.parametrize(("causal", "tokens"), [(True, 1), (True, 97), (False, 64), (False, 300)])
def test_head_metrics_equal_the_float64_computation_within_1e_6(causal: bool, tokens: int) -> None:
    """head_metrics sums rows in float32, layer by layer: every number as the metrics of the float64 weights."""
    generator = torch.Generator().manual_seed(tokens)
    scores = 4 * torch.randn(3, 4, tokens, tokens, generator=generator)  # (L, H, T, S): some rows nearly one-hot
    if causal:
        scores = scores.masked_fill(torch.ones(tokens, tokens, dtype=torch.bool).triu(diagonal=1), float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights[0, 0] = torch.eye(tokens)  # exact zeros and ones: 0 · log 0 counts as 0
    weights[1, 1] = torch.tril(torch.ones(tokens, tokens)) / torch.arange(1, tokens + 1)[:, None]
    special = tuple(i % 17 == 5 for i in range(tokens))
    trace = AttentionTrace(weights, tuple(f"t{i}" for i in range(tokens)), (0, 1, 2), "x", special=special)
    metrics = head_metrics(trace)
    exact = weights.double()
    expected = {
        "entropy": entropy(exact),
        "distance": attended_distance(exact),
        "asymmetry": asymmetry(exact),
        "relative_asymmetry": relative_asymmetry(exact),
        "sink_share": sink_share(exact, trace.sinks),
    }
    for name, reference in expected.items():
        found = getattr(metrics, name)
        assert found.dtype == torch.float32 and found.shape == (3, 4), name
        assert torch.allclose(found.double(), reference, rtol=1e-6, atol=1e-6), name


def test_asymmetry_needs_square_weights() -> None:
    with pytest.raises(ShapeError, match="square"):
        asymmetry(torch.ones(2, 3) / 3)


def test_top_attended_lists_each_tokens_strongest_keys_in_order() -> None:
    weights = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    top = top_attended(weights, 2)
    assert [[key for key, _ in row] for row in top] == [[0, 1], [2, 1]]
    assert [[weight for _, weight in row] for row in top] == [pytest.approx([0.7, 0.2]), pytest.approx([0.6, 0.3])]


def test_strongest_arrows_leave_out_self_attention_and_the_sinks_unless_asked() -> None:
    weights = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.5, 0.4, 0.1, 0.0],
            [0.3, 0.37, 0.33, 0.0],
            [0.2, 0.1, 0.3, 0.4],
        ]
    )
    sinks = [True, False, False, False]
    arrows = strongest_arrows(weights, top=2, sinks=sinks)
    assert [(a.query, a.key) for a in arrows] == [(2, 1), (3, 2)]
    assert arrows[0].weight == pytest.approx(0.37)
    everything = strongest_arrows(weights, top=1, sinks=sinks, include_sinks=True, include_self=True)
    assert everything == [Arrow(0, 0, 1.0)]
