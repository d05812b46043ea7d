"""Positional schemes against their formulas, written independently here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qkv.attention.positions import (
    ALiBiPositions,
    LearnedPositions,
    RotaryPositions,
    SinusoidalPositions,
    alibi_slopes,
    rope_tables,
    rotate,
    sinusoid_table,
)
from qkv.errors import InputError, ShapeError


def rope_by_complex_numbers(x: np.ndarray, positions: np.ndarray, theta: float = 10000.0) -> np.ndarray:
    """RoPE with the half-split pairing: feature i and i + K/2 are one complex number, turned by p · θ_i."""
    K = x.shape[-1]
    pairs = x[..., : K // 2] + 1j * x[..., K // 2 :]  # (…, T, K/2)
    frequencies = theta ** (-np.arange(0, K, 2) / K)  # θ_i = theta^(-2i/K)
    turned = pairs * np.exp(1j * positions[:, None] * frequencies[None, :])  # (…, T, K/2)
    return np.concatenate([turned.real, turned.imag], axis=-1)


@pytest.mark.parametrize("offset", [0, 5])
@pytest.mark.parametrize("theta", [10000.0, 500.0])
def test_rope_matches_a_complex_number_rotation(offset: int, theta: float) -> None:
    rope = RotaryPositions(head_width=8, context=32, theta=theta)
    x = torch.randn(2, 3, 6, 8)
    expected = rope_by_complex_numbers(x.double().numpy(), np.arange(offset, offset + 6), theta)
    np.testing.assert_allclose(rope(x, offset).numpy(), expected, atol=2e-6)


@pytest.mark.parametrize(("offset", "T"), [(0, 1), (3, 4)])
def test_rotate_turns_each_pair_by_the_tables_angles(offset: int, T: int) -> None:
    """rotate() on rows of rope_tables is the complex-number rotation at those positions (what the fast decoder
    calls without the module)."""
    cos, signed_sin = rope_tables(8, 16, 500.0)
    x = torch.randn(3, T, 8)
    expected = rope_by_complex_numbers(x.double().numpy(), np.arange(offset, offset + T), theta=500.0)
    got = rotate(x, cos[offset : offset + T], signed_sin[offset : offset + T])
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-6)


def test_rope_tables_hold_the_cosines_and_the_signed_sines_of_each_positions_angles() -> None:
    cos, signed_sin = rope_tables(6, 5, 10000.0)
    angles = np.outer(np.arange(5), 10000.0 ** (-np.arange(0, 6, 2) / 6))  # (P, K/2)
    np.testing.assert_allclose(cos.numpy(), np.cos(np.concatenate([angles, angles], axis=1)), atol=1e-7)
    np.testing.assert_allclose(signed_sin.numpy(), np.concatenate([-np.sin(angles), np.sin(angles)], 1), atol=1e-7)


def test_rope_matches_torch_view_as_complex() -> None:
    rope = RotaryPositions(head_width=4, context=16)
    x = torch.randn(1, 1, 10, 4, dtype=torch.float64)
    pairs = torch.view_as_complex(torch.stack([x[..., :2], x[..., 2:]], dim=-1))  # (…, T, K/2)
    angles = torch.outer(torch.arange(10, dtype=torch.float64), 10000.0 ** (-torch.arange(0, 4, 2) / 4))
    turned = torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles))  # (…, T, K/2, 2)
    expected = torch.cat([turned[..., 0], turned[..., 1]], dim=-1)
    torch.testing.assert_close(rope(x), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("distance", [0, 1, 7])
def test_rope_dot_products_depend_only_on_relative_position(distance: int) -> None:
    rope = RotaryPositions(head_width=16, context=64)
    query, key = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(query_position: int, key_position: int) -> float:
        return float((rope(query, query_position) * rope(key, key_position)).sum())

    scores = [score(p + distance, p) for p in (0, 3, 20, 40)]
    np.testing.assert_allclose(scores, scores[0], atol=1e-5)
    assert abs(score(distance + 2, 0) - scores[0]) > 1e-3  # but it does depend on the distance


def test_rope_preserves_the_length_of_every_vector() -> None:
    rope = RotaryPositions(head_width=8, context=16)
    x = torch.randn(2, 2, 16, 8)
    torch.testing.assert_close(rope(x).norm(dim=-1), x.norm(dim=-1), atol=1e-5, rtol=1e-5)


def test_rope_at_an_offset_is_the_slice_of_a_longer_rotation() -> None:
    rope = RotaryPositions(head_width=8, context=16)
    x = torch.randn(1, 2, 9, 8)
    torch.testing.assert_close(rope(x[:, :, 4:], offset=4), rope(x)[:, :, 4:])


def test_rope_refuses_an_odd_head_width() -> None:
    with pytest.raises(InputError, match="head width must be even, got 5"):
        RotaryPositions(head_width=5, context=8)


def get_slopes(n: int) -> list[float]:
    """The ALiBi paper's reference algorithm (Press et al., github.com/ofirpress/attention_with_linear_biases)."""

    def get_slopes_power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (
        get_slopes_power_of_2(closest_power_of_2) + get_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2]
    )


def test_alibi_slopes_for_eight_heads_are_the_papers_one_half_to_one_256th() -> None:
    assert alibi_slopes(8).tolist() == [2.0**-i for i in range(1, 9)]


def test_alibi_slopes_for_six_heads_complete_four_with_every_other_of_eight() -> None:
    assert alibi_slopes(6).tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]


@pytest.mark.parametrize("heads", [1, 2, 3, 6, 9, 12, 16, 24])
def test_alibi_slopes_follow_the_reference_algorithm(heads: int) -> None:
    np.testing.assert_allclose(alibi_slopes(heads).numpy(), get_slopes(heads), rtol=1e-6)


@pytest.mark.parametrize(("T", "S", "offset"), [(5, 5, 0), (2, 7, 5), (1, 4, 3)])
def test_alibi_bias_is_minus_slope_times_distance(T: int, S: int, offset: int) -> None:
    slopes = get_slopes(4)
    expected = np.array([[[-slopes[h] * abs(offset + t - s) for s in range(S)] for t in range(T)] for h in range(4)])
    np.testing.assert_allclose(ALiBiPositions(4, context=16)(T, S, offset).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("width", [6, 7, 16])
def test_sinusoidal_table_follows_the_original_formula(width: int) -> None:
    expected = np.zeros((20, width))
    for p in range(20):
        for feature in range(width):
            angle = p / 10000 ** ((feature - feature % 2) / width)
            expected[p, feature] = math.sin(angle) if feature % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(sinusoid_table(20, width).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("kind", [LearnedPositions, SinusoidalPositions])
def test_absolute_positions_add_the_rows_from_the_offset_on(kind: type[LearnedPositions]) -> None:
    module = kind(10, 4)
    x = torch.randn(2, 3, 4)
    table = module.table.weight if isinstance(module.table, torch.nn.Embedding) else module.table
    assert module.vectors is table  # the accessor hands out the table itself (the fast decoder adds its rows)
    torch.testing.assert_close(module(x, offset=6), x + table[6:9])


@pytest.mark.parametrize("kind", [LearnedPositions, SinusoidalPositions])
def test_absolute_positions_beyond_the_context_raise_a_shape_error(kind: type[LearnedPositions]) -> None:
    with pytest.raises(ShapeError, match=r"positions 8…10 are outside the model's context of 10"):
        kind(10, 4)(torch.zeros(1, 3, 4), offset=8)


def test_rope_and_alibi_beyond_the_context_raise_a_shape_error() -> None:
    with pytest.raises(ShapeError, match="context of 8"):
        RotaryPositions(head_width=4, context=8)(torch.zeros(1, 1, 3, 4), offset=6)
    with pytest.raises(ShapeError, match="context of 8"):
        ALiBiPositions(2, context=8)(9, 9)
