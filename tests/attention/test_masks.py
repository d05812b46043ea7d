"""Boolean masks: True where a query may attend to a key, shaped (T, S) or broadcastable to (B, H, T, S)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qkv.attention import masks
from qkv.errors import InputError, ShapeError


@pytest.mark.parametrize(("T", "S"), [(1, 1), (4, 4), (3, 7), (1, 5), (5, 6)])
def test_causal_is_bottom_right_aligned_the_last_t_of_s_positions(T: int, S: int) -> None:
    expected = np.array([[s <= t + S - T for s in range(S)] for t in range(T)])
    np.testing.assert_array_equal(masks.causal(T, S).numpy(), expected)


def test_causal_with_one_size_is_the_lower_triangle() -> None:
    np.testing.assert_array_equal(masks.causal(4).numpy(), np.tril(np.ones((4, 4), dtype=bool)))


def test_causal_refuses_more_queries_than_keys() -> None:
    with pytest.raises(ShapeError, match=r"T=5 queries and S=3 keys"):
        masks.causal(5, 3)


@pytest.mark.parametrize(("T", "S", "window"), [(6, 6, 1), (6, 6, 3), (2, 7, 3), (5, 5, 10)])
def test_sliding_window_sees_itself_and_the_window_minus_one_keys_before(T: int, S: int, window: int) -> None:
    expected = np.array([[t + S - T - window < s <= t + S - T for s in range(S)] for t in range(T)])
    np.testing.assert_array_equal(masks.sliding_window(T, S, window=window).numpy(), expected)


def test_a_window_as_long_as_the_sequence_is_the_causal_mask() -> None:
    assert torch.equal(masks.sliding_window(5, window=5), masks.causal(5))


def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(InputError, match="window must be at least 1 key, got 0"):
        masks.sliding_window(4, window=0)


def test_padding_hides_padded_keys_for_every_head_and_query() -> None:
    keep = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    mask = masks.padding(keep)
    assert mask.shape == (2, 1, 1, 4) and mask.dtype == torch.bool
    np.testing.assert_array_equal(mask[:, 0, 0].numpy(), keep.numpy().astype(bool))


def test_padding_needs_a_batch_of_key_sequences() -> None:
    with pytest.raises(ShapeError, match=r"\(B, S\).*\(4,\)"):
        masks.padding(torch.ones(4, dtype=torch.bool))


def test_combine_is_a_broadcasting_and_that_skips_none() -> None:
    keep = masks.padding(torch.tensor([[True, True, False]]))  # (1, 1, 1, 3)
    causal = masks.causal(3)  # (3, 3)
    combined = masks.combine(None, causal, keep, None)
    assert combined is not None and combined.shape == (1, 1, 3, 3)
    expected = np.tril(np.ones((3, 3), dtype=bool)) & np.array([True, True, False])
    np.testing.assert_array_equal(combined[0, 0].numpy(), expected)


def test_combine_of_nothing_is_none_and_of_one_mask_is_that_mask() -> None:
    causal = masks.causal(3)
    assert masks.combine() is None and masks.combine(None, None) is None
    assert masks.combine(None, causal) is causal
