"""Capture attention weights through each layer's capture point (``SelfAttention.weights_hook``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast

from qkv.attention.layer import SelfAttention
from qkv.errors import InputError
from qkv.model.transformer import Block, Transformer
from qkv.shapes import Tensor

__all__ = ["capture_attention"]


@contextmanager
def capture_attention(model: Transformer, layers: Sequence[int] | None = None) -> Iterator[dict[int, list[Tensor]]]:
    """Within the block, every forward pass records the weights ``(B, H, T, S)`` of the chosen layers.

    Yields ``{layer: [weights of each call, in order]}`` (one entry per call: a prefill, then each decode step).
    """
    count = len(model.blocks)
    chosen = list(range(count)) if layers is None else list(layers)
    bad = [index for index in chosen if not -count <= index < count]
    if bad:
        raise InputError(f"layer {bad[0]} is out of range; this model has layers 0…{count - 1}")
    records: dict[int, list[Tensor]] = {index % count: [] for index in chosen}
    attentions: list[SelfAttention] = [cast(Block, block).attention for block in model.blocks]
    try:
        for index in records:
            attentions[index].weights_hook = records[index].append
        yield records
    finally:
        for attention in attentions:
            attention.weights_hook = None
