"""A GGUF's 8-bit blocks (Q8_0) for the token embedding and the output layer, in the ``int4`` weight format.

llama.cpp stores SmolLM2's token embedding, which is also its output layer, as Q8_0: blocks of 32 weights, each
a float16 scale ``d`` and 32 values ``q`` in -127…127, ``w = d·q``. In ``int4`` (:mod:`qkv.pretrained.lowbit`)
qkv keeps those blocks (:class:`Int8Blocks`, 8.5 bits a weight) instead of a bfloat16 table:

* the embedding (:class:`Int8Embedding`) looks rows up and returns the file's values exactly, in float32;
* the output layer (:class:`Int8Head`) is the largest matrix a decoding step reads (49,152 × 576 for SmolLM2:
  56 MB in bfloat16, as many bytes as the 30 blocks' 4-bit layers together). PyTorch has no kernel for blocks
  of 8 bits with a scale each (its 8-bit kernel takes one scale per row, and runs no faster than reading
  bfloat16 here), so for a few rows the head is computed in two passes: a coarse one, PyTorch's 4-bit kernel on
  a 4-bit copy of the blocks made at load (:func:`coarse_blocks`, 4.5 bits a weight: logits within about ±0.4),
  then the :data:`RESCORED` largest coarse logits of each row computed again from the file's blocks, in
  float32. The token a greedy decoder picks, and every logit that carries real probability, is therefore the
  exact weights' (unless the best token lies outside the coarse top 64); the others keep the coarse values
  (BENCHMARKS.md, pretrained: top tokens, and how far the probabilities move). Many rows (a prompt's every
  position) dequantise the blocks to bfloat16, a slice of rows at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qkv.pretrained.lowbit import TILE, Int4Blocks, pack_int4
from qkv.shapes import Tensor

__all__ = ["MAX_INT8_ROWS", "RESCORED", "Int8Blocks", "Int8Embedding", "Int8Head", "coarse_blocks", "int8_blocks"]

GROUP = 32  # weights per Q8_0 block (llama.cpp's QK8_0)
MAX_INT8_ROWS = 8  # up to this many rows the coarse 4-bit pass runs; more dequantise the blocks to bfloat16
RESCORED = 64  # logits per row recomputed from the file's blocks after the coarse pass
_SLICE = 256  # output rows dequantised at a time: small temporaries, which the allocator reuses (not keeps)
_Q8_0_BYTES = 34  # bytes per Q8_0 block: the float16 scale, then 32 int8 values


@dataclass(frozen=True)
class Int8Blocks:
    """A matrix ``(N, K)`` as a GGUF's Q8_0 blocks: ``w = d·q`` for each block of 32 along ``K``."""

    values: Tensor  # int8 (N, K): q
    scales: Tensor  # float32 (N, K/32): d (a float16 in the file, held exactly)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.values.shape[0]), int(self.values.shape[1])

    def dequantised(self, rows: Tensor | slice = slice(None), dtype: torch.dtype = torch.float32) -> Tensor:
        """The weights of ``rows`` (indices ``(…)`` or a slice) in ``dtype``: ``(…, K)``, each exactly ``d·q``
        before the final rounding to ``dtype``."""
        values, scales = self.values[rows], self.scales[rows]  # (…, K), (…, K/32)
        blocks = values.view(*values.shape[:-1], -1, GROUP).float() * scales.unsqueeze(-1)  # (…, K/32, 32)
        return blocks.flatten(-2).to(dtype)  # (…, K)


def int8_blocks(raw: np.ndarray, kind: str, shape: tuple[int, ...]) -> Int8Blocks | None:
    """The blocks of a Q8_0 matrix ``shape = (N, K)`` from the file's bytes ``(N, bytes per row)``; None for any
    other type."""
    if kind != "Q8_0" or len(shape) != 2 or shape[1] % GROUP:
        return None
    N, K = shape
    blocks = torch.from_numpy(raw).view(N, K // GROUP, _Q8_0_BYTES)  # (N, K/32, bytes)
    scales = blocks[..., :2].contiguous().view(torch.float16).float().view(N, K // GROUP)  # (N, K/32)
    values = blocks[..., 2:].contiguous().view(torch.int8).view(N, K)  # (N, K)
    return Int8Blocks(values, scales)


def coarse_blocks(blocks: Int8Blocks) -> Int4Blocks:
    """A 4-bit copy of the blocks for the 4-bit kernel: per block of 32, ``w ≈ (q - 8)·scale + zero`` with
    ``q`` in 0…15 spanning the block's smallest to largest weight (scale and zero in bfloat16, as the kernel reads
    them). Rows are added up to a multiple of 64 (the kernel's tile) with zero weights."""
    N, K = blocks.shape
    rows = -(-N // TILE) * TILE
    packed = torch.zeros(rows, K // 2, dtype=torch.uint8)
    scales_and_zeros = torch.zeros(K // GROUP, rows, 2, dtype=torch.bfloat16)
    for start in range(0, N, _SLICE):
        part = slice(start, min(start + _SLICE, N))
        weights = blocks.dequantised(part).view(-1, K // GROUP, GROUP)  # (n, K/32, 32)
        low, high = weights.amin(-1), weights.amax(-1)  # (n, K/32)
        scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny).to(torch.bfloat16)
        zero = (low + 8 * scale.float()).to(torch.bfloat16)
        base = zero.float() - 8 * scale.float()  # what q = 0 stands for, as the kernel computes it
        values = ((weights - base.unsqueeze(-1)) / scale.float().unsqueeze(-1)).round_().clamp_(0, 15)
        n = weights.shape[0]
        grid = torch.zeros(-(-n // TILE) * TILE, K, dtype=torch.uint8)  # (n up to a tile, K)
        grid[:n] = values.view(n, K).to(torch.uint8)
        pack_int4(grid, out=packed[start : start + grid.shape[0]])
        scales_and_zeros[:, part] = torch.stack([scale, zero], dim=-1).transpose(0, 1)  # (K/32, n, 2)
    return Int4Blocks(packed, scales_and_zeros)


class Int8Embedding(nn.Embedding):
    """A token embedding held as Q8_0 blocks; its rows come out in float32, exactly the file's values."""

    values: Tensor
    scales: Tensor

    def __init__(self, blocks: Int8Blocks) -> None:
        nn.Module.__init__(self)  # nn.Embedding's own __init__ would allocate and initialise a float32 table
        self.num_embeddings, self.embedding_dim = blocks.shape
        self.padding_idx, self.max_norm, self.norm_type = None, None, 2.0
        self.scale_grad_by_freq, self.sparse = False, False
        self.register_buffer("values", blocks.values)  # (V, D) int8
        self.register_buffer("scales", blocks.scales)  # (V, D/32) float32

    @property
    def blocks(self) -> Int8Blocks:
        return Int8Blocks(self.values, self.scales)

    @property
    def weight(self) -> Tensor:  # type: ignore[override]  # (V, D) float32, computed from the blocks
        return self.blocks.dequantised()

    def forward(self, ids: Tensor) -> Tensor:
        return self.blocks.dequantised(ids)  # (…, D)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, 8-bit blocks of {GROUP}"


class Int8Head(nn.Linear):
    """The output layer ``x Wᵀ`` on Q8_0 blocks (shared with a tied :class:`Int8Embedding`): logits in float32.

    Up to :data:`MAX_INT8_ROWS` rows: PyTorch's 4-bit kernel on the coarse copy (:func:`coarse_blocks`), then
    each row's :data:`RESCORED` largest logits recomputed from the blocks in float32. More rows: the blocks
    dequantised to bfloat16, :data:`_SLICE` output rows at a time, and bfloat16 products.
    """

    input_dtype = torch.bfloat16
    output_dtype = torch.float32
    values: Tensor
    scales: Tensor
    coarse_packed: Tensor
    coarse_scales_and_zeros: Tensor

    def __init__(self, blocks: Int8Blocks) -> None:
        nn.Module.__init__(self)  # no float weight: the blocks are the weight
        self.out_features, self.in_features = blocks.shape
        self.register_buffer("values", blocks.values)  # (N, K) int8
        self.register_buffer("scales", blocks.scales)  # (N, K/32) float32
        coarse = coarse_blocks(blocks)
        self.register_buffer("coarse_packed", coarse.packed)  # (N up to 64, K/2) uint8
        self.register_buffer("coarse_scales_and_zeros", coarse.scales_and_zeros)  # (K/32, N up to 64, 2)
        self.register_parameter("bias", None)

    @property
    def coarse(self) -> Int4Blocks:
        return Int4Blocks(self.coarse_packed, self.coarse_scales_and_zeros)

    @property
    def blocks(self) -> Int8Blocks:
        return Int8Blocks(self.values, self.scales)

    @property
    def weight(self) -> Tensor:  # type: ignore[override]  # (N, K) bfloat16, computed from the blocks
        return self.blocks.dequantised(dtype=torch.bfloat16)

    def forward(self, x: Tensor) -> Tensor:
        return _logits(x, blocks=self.blocks, coarse=self.coarse)

    def functional(self) -> Callable[[Tensor], Tensor]:
        """:meth:`forward` as a function of ``x`` alone, on this layer's own tensors (no module look-ups per call)."""
        return functools.partial(_logits, blocks=self.blocks, coarse=self.coarse)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, 8-bit blocks of {GROUP}, a 4-bit pass, the top {RESCORED} logits exact"


def _logits(x: Tensor, *, blocks: Int8Blocks, coarse: Int4Blocks) -> Tensor:
    N, K = blocks.shape
    rows = x.numel() // K
    flat = x.reshape(rows, K)  # (rows, K)
    if rows > MAX_INT8_ROWS:
        low = flat.to(torch.bfloat16)
        slices = [
            F.linear(low, blocks.dequantised(slice(start, start + _SLICE), torch.bfloat16))
            for start in range(0, N, _SLICE)
        ]
        return torch.cat(slices, dim=-1).float().view(*x.shape[:-1], N)  # (…, N)
    y = torch.ops.aten._weight_int4pack_mm_for_cpu(
        flat.to(torch.bfloat16), coarse.packed, GROUP, coarse.scales_and_zeros
    )
    y = y[:, :N].float()  # (rows, N): the rows added up to a tile dropped
    top = y.topk(min(RESCORED, N), dim=-1).indices  # (rows, R)
    exact = blocks.dequantised(top) @ flat.float().unsqueeze(-1)  # (rows, R, K) @ (rows, K, 1)
    return y.scatter_(-1, top, exact.squeeze(-1)).view(*x.shape[:-1], N)
