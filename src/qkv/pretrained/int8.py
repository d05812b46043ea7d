"""A GGUF's 8-bit blocks (Q8_0) for the token embedding and the output layer, in the ``int4`` weight format.

llama.cpp stores SmolLM2's token embedding, which is also its output layer, as Q8_0: blocks of 32 weights, each
a float16 scale ``d`` and 32 values ``q`` in -127…127, ``w = d·q``. In ``int4`` (:mod:`qkv.pretrained.lowbit`)
qkv keeps those blocks (:class:`Int8Blocks`, 8.5 bits a weight) instead of a bfloat16 table:

* the embedding (:class:`Int8Embedding`) looks rows up and returns the file's values exactly, in float32;
* the output layer (:class:`Int8Head`) is the largest matrix a decoding step reads (49,152 × 576 for SmolLM2:
  56 MB in bfloat16, as many bytes as the 30 blocks' 4-bit layers together). For a few rows it runs PyTorch's
  8-bit weight-only kernel (``_weight_int8pack_mm``), which takes one scale per output row, not per block; so
  the blocks are re-quantised once, at load, to one scale a row (:func:`row_quantised`: a coarser grid than the
  file's), and the :data:`RESCORED` largest logits of each row are then computed again from the file's blocks in
  float32. The token a greedy decoder picks is therefore the one the exact weights rank first (unless it lies
  outside the coarse top 16); every other logit is within the row grid's rounding (BENCHMARKS.md, pretrained).
  Many rows (a prompt's every position) dequantise the blocks to bfloat16, a slice of rows at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qkv.shapes import Tensor

__all__ = ["MAX_INT8_ROWS", "RESCORED", "Int8Blocks", "Int8Embedding", "Int8Head", "int8_blocks", "row_quantised"]

GROUP = 32  # weights per Q8_0 block (llama.cpp's QK8_0)
MAX_INT8_ROWS = 8  # up to this many rows the 8-bit kernel runs; more dequantise to bfloat16
RESCORED = 16  # logits per row recomputed from the file's blocks after the coarse product
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


def row_quantised(blocks: Int8Blocks) -> tuple[Tensor, Tensor]:
    """The blocks' weights on one grid per row, as ``_weight_int8pack_mm`` reads them: int8 values ``(N, K)`` and
    bfloat16 scales ``(N,)``, ``w ≈ scale·q``. Each row's scale is its largest ``|w|`` / 127, rounded to bfloat16
    first so that the values are rounded to the grid the kernel multiplies by."""
    N, K = blocks.shape
    values = torch.empty(N, K, dtype=torch.int8)
    scales = torch.empty(N, dtype=torch.bfloat16)
    for start in range(0, N, _SLICE):
        rows = slice(start, min(start + _SLICE, N))
        weights = blocks.dequantised(rows)  # (rows, K)
        scale = (weights.abs().amax(-1) / 127).clamp(min=torch.finfo(torch.float32).tiny).to(torch.bfloat16)
        scales[rows] = scale
        values[rows] = weights.div_(scale.float().unsqueeze(-1)).round_().clamp_(-127, 127).to(torch.int8)
    return values, scales


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

    Up to :data:`MAX_INT8_ROWS` rows: PyTorch's 8-bit kernel on the row-quantised copy, then each row's
    :data:`RESCORED` largest logits recomputed from the blocks in float32. More rows: the blocks dequantised to
    bfloat16, :data:`_SLICE` output rows at a time, and bfloat16 products.
    """

    input_dtype = torch.bfloat16
    output_dtype = torch.float32
    values: Tensor
    scales: Tensor
    row_values: Tensor
    row_scales: Tensor

    def __init__(self, blocks: Int8Blocks) -> None:
        nn.Module.__init__(self)  # no float weight: the blocks are the weight
        self.out_features, self.in_features = blocks.shape
        self.register_buffer("values", blocks.values)  # (N, K) int8
        self.register_buffer("scales", blocks.scales)  # (N, K/32) float32
        row_values, row_scales = row_quantised(blocks)
        self.register_buffer("row_values", row_values)  # (N, K) int8
        self.register_buffer("row_scales", row_scales)  # (N,) bfloat16
        self.register_parameter("bias", None)

    @property
    def blocks(self) -> Int8Blocks:
        return Int8Blocks(self.values, self.scales)

    @property
    def weight(self) -> Tensor:  # type: ignore[override]  # (N, K) bfloat16, computed from the blocks
        return self.blocks.dequantised(dtype=torch.bfloat16)

    def forward(self, x: Tensor) -> Tensor:
        return _logits(x, blocks=self.blocks, row_values=self.row_values, row_scales=self.row_scales)

    def functional(self) -> Callable[[Tensor], Tensor]:
        """:meth:`forward` as a function of ``x`` alone, on this layer's own tensors (no module look-ups per call)."""
        return functools.partial(_logits, blocks=self.blocks, row_values=self.row_values, row_scales=self.row_scales)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, 8-bit blocks of {GROUP}, the top {RESCORED} logits rescored"


def _logits(x: Tensor, *, blocks: Int8Blocks, row_values: Tensor, row_scales: Tensor) -> Tensor:
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
    y = torch.ops.aten._weight_int8pack_mm(flat.to(torch.bfloat16), row_values, row_scales).float()  # (rows, N)
    top = y.topk(min(RESCORED, N), dim=-1).indices  # (rows, R)
    exact = blocks.dequantised(top) @ flat.float().unsqueeze(-1)  # (rows, R, K) @ (rows, K, 1)
    return y.scatter_(-1, top, exact.squeeze(-1)).view(*x.shape[:-1], N)
