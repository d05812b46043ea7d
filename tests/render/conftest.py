"""A small trace with known weights, for the renderers (they take data, never a model)."""

from __future__ import annotations

import pytest
import torch

from qkv.data.trace import AttentionTrace

TOKENS = ("[CLS]", "Evan", "'s", " dog", " Riley", " runs", "[SEP]")


def make_trace(text_tokens: tuple[str, ...] = TOKENS, layers: int = 2, heads: int = 3) -> AttentionTrace:
    """Random softmax weights, except layer 1 head 0, where Riley attends to dog with 0.37."""
    T = len(text_tokens)
    generator = torch.Generator().manual_seed(0)
    weights = torch.softmax(torch.randn(layers, heads, T, T, generator=generator), dim=-1)  # (L, H, T, S)
    if layers > 1:
        row = torch.full((T,), 0.03)
        row[3], row[0] = 0.37, 0.0
        row[0] = 1 - float(row.sum())
        weights[1, 0, 4] = row
    special = tuple(token.startswith("[") for token in text_tokens)
    text = "".join(token for token, flag in zip(text_tokens, special, strict=True) if not flag)
    return AttentionTrace(weights, text_tokens, tuple(range(layers)), text, "toy", special)


@pytest.fixture
def toy() -> AttentionTrace:
    return make_trace()
