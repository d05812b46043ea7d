"""Capture attention weights through each layer's capture point (``SelfAttention.weights_hook``).

A hooked layer takes the exact attention path, whatever ``qkv.attention.implementation`` says, and hands the
weights that path computed to the hook; the other layers follow the setting.

:func:`capture_attention` records every call's weights; :func:`attention_hooks` hands them to a function of
the caller's instead (:func:`qkv.trace` copies each layer's weights straight into one preallocated tensor, so
that a trace never holds its weights twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import cast

from qkv.attention.layer import SelfAttention
from qkv.errors import InputError
from qkv.model.transformer import Block, Transformer
from qkv.shapes import Tensor

__all__ = ["attention_hooks", "capture_attention", "layer_numbers"]


def layer_numbers(model: Transformer, layers: Sequence[int] | None) -> list[int]:
    """``layers`` as the model's layer numbers ``0 … L-1`` (negative ones count from the end; ``None``: all)."""
    count = len(model.blocks)
    chosen = list(range(count)) if layers is None else list(layers)
    bad = [index for index in chosen if not -count <= index < count]
    if bad:
        raise InputError(f"layer {bad[0]} is out of range; this model has layers 0…{count - 1}")
    return [index % count for index in chosen]


@contextmanager
def attention_hooks(model: Transformer, hooks: Mapping[int, Callable[[Tensor], None]]) -> Iterator[None]:
    """Within the block, every forward pass hands layer ``i``'s weights ``(B, H, T, S)`` to ``hooks[i]``."""
    attentions: list[SelfAttention] = [cast(Block, block).attention for block in model.blocks]
    try:
        for index, hook in hooks.items():
            attentions[index].weights_hook = hook
        yield
    finally:
        for attention in attentions:
            attention.weights_hook = None


@contextmanager
def capture_attention(model: Transformer, layers: Sequence[int] | None = None) -> Iterator[dict[int, list[Tensor]]]:
    """Within the block, every forward pass records the weights ``(B, H, T, S)`` of the chosen layers.

    Yields ``{layer: [weights of each call, in order]}`` (one entry per call: a prefill, then each decode step).
    """
    records: dict[int, list[Tensor]] = {index: [] for index in layer_numbers(model, layers)}
    with attention_hooks(model, {index: calls.append for index, calls in records.items()}):
        yield records
