"""get_batch: random windows of the token stream, targets shifted by one, reproducible from the seed."""

from __future__ import annotations

import torch

from qkv.training.data import get_batch

IDS = torch.randperm(500, generator=torch.Generator().manual_seed(0))  # distinct ids: a window's start is its first id
WHERE = {int(token): index for index, token in enumerate(IDS)}


def test_each_row_is_a_window_of_the_source_and_targets_are_the_next_tokens() -> None:
    inputs, targets = get_batch(IDS, 32, 10, torch.Generator().manual_seed(1))
    assert inputs.shape == targets.shape == (32, 10)
    assert inputs.dtype == targets.dtype == torch.long
    for row_inputs, row_targets in zip(inputs, targets, strict=True):
        start = WHERE[int(row_inputs[0])]
        assert torch.equal(row_inputs, IDS[start : start + 10])
        assert torch.equal(row_targets, IDS[start + 1 : start + 11])


def test_targets_are_inputs_shifted_by_one() -> None:
    inputs, targets = get_batch(IDS, 8, 12, torch.Generator().manual_seed(2))
    assert torch.equal(targets[:, :-1], inputs[:, 1:])


def draws(seed: int, count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [get_batch(IDS, 4, 8, generator) for _ in range(count)]


def test_same_seed_same_batches_different_seed_different_batches() -> None:
    first, again, other = draws(5), draws(5), draws(6)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], other[0][0])


def test_every_window_whose_targets_fit_is_drawn_and_no_other() -> None:
    ids = torch.arange(13)  # context 10: starts 0, 1, 2 are the only windows with a next token for each input
    inputs, targets = get_batch(ids, 300, 10, torch.Generator().manual_seed(3))
    assert set(inputs[:, 0].tolist()) == {0, 1, 2}
    assert int(targets.max()) == 12


def test_compact_ids_give_the_same_int64_batches() -> None:
    """qkv train keeps the ids as encoded (uint16, or int32): the batches are those of int64 ids, as int64."""
    for dtype in (torch.uint16, torch.int32):
        compact = get_batch(IDS.to(dtype), 4, 8, torch.Generator().manual_seed(3))
        wide = get_batch(IDS, 4, 8, torch.Generator().manual_seed(3))
        assert all(torch.equal(c, w) and c.dtype == torch.long for c, w in zip(compact, wide, strict=True))
