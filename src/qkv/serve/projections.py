"""Each layer's queries, keys and values for one text, and how far the fused kernel is from the exact one.

:func:`capture_projections` sets forward hooks on every layer's ``to_q``, ``to_k`` and ``to_v`` for one
forward pass (the one :func:`qkv.trace` runs, so the text goes through the model once), then applies the
layer's own RoPE to the queries and keys: what the layer's kernel multiplies. The Q/K view reads those.

:func:`fused_exact_gap` compares the exact kernel's outputs (its weights, which the trace kept, times the
values) with the fused kernel's on them and reports the largest difference: the exactness badge. (When the
model gains one switch between its kernels, this becomes a call to it; keep it in this one function.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from qkv.attention.kernels import fused_attention
from qkv.attention.layer import SelfAttention
from qkv.model.transformer import Block, Transformer
from qkv.shapes import Tensor

__all__ = ["Projections", "capture_projections", "fused_exact_gap"]


@dataclass(frozen=True, eq=False)
class Projections:
    """One layer's ``queries (H, T, K)``, ``keys (G, S, K)`` and ``values (G, S, K)`` for one sequence, RoPE
    applied, in the dtype the layer computes in."""

    queries: Tensor
    keys: Tensor
    values: Tensor


@contextmanager
def capture_projections(model: Transformer) -> Iterator[list[Projections]]:
    """Within the block, one forward pass of one sequence fills the yielded list, one entry per layer.

    The list is filled when the block exits; a pass that ran no layer (or more than one pass) leaves it empty.
    """
    attentions = [cast(Block, block).attention for block in model.blocks]
    outputs: list[dict[str, list[Tensor]]] = [{"q": [], "k": [], "v": []} for _ in attentions]
    handles = []

    def recorder(calls: list[Tensor]) -> object:
        def hook(module: nn.Module, inputs: object, output: Tensor) -> None:
            calls.append(output.detach())

        return hook

    captured: list[Projections] = []
    try:
        for attention, record in zip(attentions, outputs, strict=True):
            for name in ("q", "k", "v"):
                handles.append(getattr(attention, f"to_{name}").register_forward_hook(recorder(record[name])))
        yield captured
    finally:
        for handle in handles:
            handle.remove()
    if all(len(record[name]) == 1 for record in outputs for name in ("q", "k", "v")):
        captured.extend(_heads(attention, record) for attention, record in zip(attentions, outputs, strict=True))


def _heads(attention: SelfAttention, record: dict[str, list[Tensor]]) -> Projections:
    """``(1, T, heads·K)`` projections split into heads, RoPE applied as the layer applies it."""
    config = attention.config
    H, G, K = config.heads, config.groups, config.key_width
    (queries,), (keys,), (values,) = record["q"], record["k"], record["v"]
    T = queries.shape[1]
    queries = queries[0].view(T, H, K).transpose(0, 1)  # (H, T, K)
    keys = keys[0].view(T, G, K).transpose(0, 1)  # (G, S, K)
    values = values[0].view(T, G, K).transpose(0, 1)  # (G, S, K)
    if attention.rope is not None:
        queries, keys = attention.rope(queries[None], 0)[0], attention.rope(keys[None], 0)[0]
    return Projections(queries, keys, values)


@torch.no_grad()
def fused_exact_gap(model: Transformer, layers: list[Projections], weights: Tensor) -> float:
    """The largest ``|fused − exact|`` over every layer's attention output for these projections.

    ``weights (L, H, T, S)`` are the exact kernel's weights from the same pass (the trace's: a traced layer
    takes the exact path), so the exact output is ``weights @ values``, as :func:`exact_attention` computes
    it, without computing the scores and the softmax a second time.
    """
    gap = 0.0
    for block, captured, layer_weights in zip(model.blocks, layers, weights, strict=True):
        attention = cast(Block, block).attention
        queries, keys, values = captured.queries[None], captured.keys[None], captured.values[None]
        H, T, S = queries.shape[1], queries.shape[2], keys.shape[2]
        bias = attention.alibi(T, S, 0).to(queries.dtype) if attention.alibi is not None else None  # (H, T, S)
        shared = values.repeat_interleave(H // values.shape[1], dim=1)  # (1, H, S, K): each query head's values
        exact = layer_weights[None].to(values.dtype) @ shared  # (1, H, T, K)
        fused = fused_attention(queries, keys, values, causal=attention.config.causal, bias=bias)  # (1, H, T, K)
        gap = max(gap, float((exact.float() - fused.float()).abs().max()))
    return gap
