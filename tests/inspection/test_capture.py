"""Capturing attention weights through the layers' capture points."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import torch

import qkv
from qkv.attention import implementation
from qkv.errors import InputError
from qkv.inspection import capture_attention

KernelCalls = Callable[[], AbstractContextManager[Counter[str]]]  # the conftest's kernel_calls


def _model(**fields: object) -> qkv.Transformer:
    torch.manual_seed(0)
    return qkv.Transformer(qkv.preset("tiny", vocab_size=40, context=32, **fields)).eval()


def test_capturing_every_layer_gives_the_exact_paths_logits_bit_for_bit(kernel_calls: KernelCalls) -> None:
    model, ids = _model(), torch.randint(0, 40, (2, 12))
    fused = model(ids)
    with implementation("exact"):
        exact = model(ids)
    with capture_attention(model) as records, kernel_calls() as calls:
        captured = model(ids)
    assert calls == {"exact": 2} and sorted(records) == [0, 1]
    assert torch.equal(captured, exact)
    torch.testing.assert_close(captured, fused, rtol=1e-5, atol=1e-5)


def test_only_the_captured_layers_take_the_exact_path(kernel_calls: KernelCalls) -> None:
    model, ids = _model(), torch.randint(0, 40, (1, 8))
    with capture_attention(model, [1]) as records, kernel_calls() as calls:
        model(ids)
    assert calls == {"fused": 1, "exact": 1} and len(records[1]) == 1


def test_captured_weights_equal_softmax_of_scaled_query_key_scores_recomputed_by_hand() -> None:
    model, ids = _model(), torch.randint(0, 40, (1, 10))
    block = model.blocks[1]
    normed: list[torch.Tensor] = []
    handle = block.attention_norm.register_forward_hook(lambda module, args, out: normed.append(out))
    with capture_attention(model, [1]) as records:
        model(ids)
    handle.remove()
    x = normed[0][0]  # (T, D)
    H, K = 4, 16
    q = (x @ block.attention.to_q.weight.T + block.attention.to_q.bias).view(10, H, K).transpose(0, 1)  # (H, T, K)
    k = (x @ block.attention.to_k.weight.T + block.attention.to_k.bias).view(10, H, K).transpose(0, 1)  # (H, S, K)
    scores = q @ k.transpose(1, 2) / math.sqrt(K)  # (H, T, S)
    scores = scores.masked_fill(torch.ones(10, 10, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(records[1][0][0], torch.softmax(scores, dim=-1), rtol=1e-5, atol=1e-6)


def test_each_decode_step_is_recorded_and_hooks_are_removed_afterwards() -> None:
    model, ids = _model(positions="rope"), torch.randint(0, 40, (1, 6))
    cache = model.new_cache(1)
    with capture_attention(model, [0]) as records:
        model(ids[:, :4], cache=cache)
        model(ids[:, 4:5], cache=cache)
    assert [tuple(w.shape) for w in records[0]] == [(1, 4, 4, 4), (1, 4, 1, 5)]
    assert all(block.attention.weights_hook is None for block in model.blocks)


def test_a_layer_out_of_range_names_the_valid_range() -> None:
    with (
        pytest.raises(InputError, match=r"layer 5 is out of range; this model has layers 0…1"),
        capture_attention(_model(), [5]),
    ):
        pass
