"""Lower-precision weights for pretrained models: ``bfloat16``, and ``int4`` from a GGUF file's own 4-bit blocks.

Three weight formats (:data:`WeightFormat`), chosen with ``qkv.load(name, dtype=…)`` or ``qkv generate --dtype``:

* ``float32`` — every weight in float32 (the default, and what the parity tests against ``transformers`` use).
* ``bfloat16`` — every linear layer and the token embedding store their weight in bfloat16 and multiply in
  bfloat16 (:class:`BF16Linear`); the residual stream, norms, attention and softmax stay float32. Half the
  memory; prompts (many rows at once) run several times faster on CPUs with bfloat16 matrix units.
* ``int4`` — as ``bfloat16``, except that the linear layers a GGUF stores in 4-bit blocks (Q4_0, Q4_1) keep
  those blocks and nothing else (:class:`Int4Linear`): with a few rows (decoding one token) PyTorch's 4-bit
  kernel reads 4.5 bits per weight instead of 16 or 32, which is what bounds decoding speed at batch 1; many
  rows (a prompt) dequantise one layer at a time to bfloat16, where the 4-bit kernel is slow.

Layers that multiply the same input (a block's query, key and value projections; its gate and up projections:
:data:`SIDE_BY_SIDE`) keep their blocks side by side in one buffer (:class:`SideBySide`), so that a decoder can
run them as one 4-bit product (:meth:`Int4Linear.side_by_side`): one kernel call instead of three or two, the
same numbers, since the kernel computes each output row from its own blocks alone.

The 4-bit blocks are the file's, not a new quantisation: llama.cpp's Q4_1 block of 32 weights stores a scale
``d`` and a minimum ``m`` (float16) and 32 values ``q`` in 0…15, ``w = d·q + m``; PyTorch's kernel computes
``w = (q - 8)·scale + zero`` per group of 32, so ``scale = d`` and ``zero = m + 8d`` (Q4_0: ``w = d·(q - 8)``,
``zero = 0``). The only change is that scale and zero are stored in bfloat16, as the kernel requires.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qkv.shapes import ShapeError, Tensor

__all__ = [
    "GROUP",
    "MAX_INT4_ROWS",
    "SIDE_BY_SIDE",
    "WEIGHT_FORMATS",
    "BF16Embedding",
    "BF16Linear",
    "Int4Blocks",
    "Int4Linear",
    "SideBySide",
    "WeightFormat",
    "fits_int4",
    "int4_blocks",
    "pack_int4",
]

# How a pretrained model's weights are stored (and multiplied); training's compute precision is another thing:
# :data:`qkv.training.config.ComputePrecision`.
WeightFormat = Literal["float32", "bfloat16", "int4"]
WEIGHT_FORMATS: tuple[WeightFormat, ...] = ("float32", "bfloat16", "int4")

GROUP = 32  # weights per 4-bit block (llama.cpp's QK4_0 / QK4_1)
MAX_INT4_ROWS = 8  # up to this many rows the 4-bit kernel is faster than bfloat16 (BENCHMARKS.md, pretrained)
TILE = 64  # output rows per tile of the kernel's packed layout

# The linear layers of a block that multiply the same input, in the order a decoder reads their joint output.
SIDE_BY_SIDE = (("attention.to_q", "attention.to_k", "attention.to_v"), ("mlp.to_gate", "mlp.to_hidden"))

# llama.cpp block layouts: bytes per block, and where the scale, the minimum (Q4_1) and the values start.
_Q4_LAYOUTS = {"Q4_0": (18, 0, None, 2), "Q4_1": (20, 0, 2, 4)}


@dataclass(frozen=True)
class Int4Blocks:
    """A linear weight ``(N, K)`` as PyTorch's CPU 4-bit kernel reads it."""

    packed: Tensor  # uint8 (N, K/2): two 4-bit values per byte, in the kernel's tiled layout
    scales_and_zeros: Tensor  # bfloat16 (K/32, N, 2): w = (q - 8)·scale + zero, per group of 32 along K

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.packed.shape[0]), int(self.packed.shape[1]) * 2


def fits_int4(kind: str, shape: tuple[int, ...]) -> bool:
    """Whether a GGUF matrix of this type and shape ``(N, K)`` becomes 4-bit blocks (:func:`int4_blocks`)."""
    return kind in _Q4_LAYOUTS and len(shape) == 2 and shape[0] % TILE == 0 and shape[1] % GROUP == 0


def int4_blocks(raw: np.ndarray, kind: str, shape: tuple[int, ...]) -> Int4Blocks | None:
    """The 4-bit kernel's form of a Q4_0/Q4_1 weight ``shape = (N, K)`` from the file's bytes ``(N, bytes per
    row)``; None where it cannot be held so (another type, or ``N`` not a multiple of 64)."""
    if not fits_int4(kind, shape):
        return None
    N, K = shape
    size, scale_at, minimum_at, values_at = _Q4_LAYOUTS[kind]
    blocks = torch.from_numpy(raw).view(N, K // GROUP, size)  # (N, K/32, bytes)
    scale = blocks[..., scale_at : scale_at + 2].contiguous().view(torch.float16).float()  # (N, K/32, 1)
    if minimum_at is None:
        zero = torch.zeros_like(scale)
    else:
        zero = blocks[..., minimum_at : minimum_at + 2].contiguous().view(torch.float16).float() + 8 * scale
    nibbles = blocks[..., values_at:]  # (N, K/32, 16): byte j holds value j (low) and value j + 16 (high)
    values = torch.cat([nibbles & 15, nibbles >> 4], dim=-1).view(N, K)  # (N, K), each in 0…15
    scales_and_zeros = torch.cat([scale, zero], dim=-1).transpose(0, 1).to(torch.bfloat16).contiguous()
    return Int4Blocks(pack_int4(values), scales_and_zeros)  # scales_and_zeros: (K/32, N, 2)


def pack_int4(values: Tensor, out: Tensor | None = None) -> Tensor:
    """4-bit values ``(N, K)`` (uint8, each 0…15; ``N`` a multiple of 64) in the kernel's layout ``(N, K/2)`` (into
    ``out`` if given), as ``_convert_weight_to_int4pack_for_cpu`` writes it (the tests check): for each tile of
    64 rows, K × 32 bytes; byte (k, j) holds row j (low nibble) and row j + 32 (high) of column k."""
    N, K = values.shape
    tiles = values.view(N // TILE, 2, TILE // 2, K)
    out = torch.empty(N, K // 2, dtype=torch.uint8) if out is None else out
    torch.bitwise_or(tiles[:, 0], tiles[:, 1] << 4, out=out.view(N // TILE, K, TILE // 2).transpose(1, 2))
    return out


class SideBySide:
    """One buffer ``(ΣN_i, K/2)`` for the packed values of layers ``(N_i, K)`` that multiply the same input, filled
    one layer at a time (as a loader reads them; a buffer filled at once would leave the layers' own buffers as
    holes in the process's memory). The kernel packs each tile of 64 rows on its own, so the buffer is the packing
    of the weights stacked: :meth:`Int4Linear.side_by_side` runs it as one product. Scales and zeros stay apart
    (the kernel needs them contiguous for each product it runs)."""

    def __init__(self, shapes: Sequence[tuple[int, int]]) -> None:
        if len(shapes) < 2 or len({K for _, K in shapes}) != 1 or any(N % TILE or K % GROUP for N, K in shapes):
            raise ShapeError(f"layers side by side need one K and multiples of {TILE} rows, got {list(shapes)}")
        self.shapes = list(shapes)
        self.starts = [sum(N for N, _ in shapes[:index]) for index in range(len(shapes))]
        self.buffer = torch.empty(sum(N for N, _ in shapes), shapes[0][1] // 2, dtype=torch.uint8)  # (ΣN_i, K/2)

    def place(self, index: int, blocks: Int4Blocks) -> Int4Blocks:
        """Copy layer ``index``'s packed values into its rows; the same blocks, held in the buffer."""
        if blocks.shape != self.shapes[index]:
            raise ShapeError(f"layer {index} side by side is {self.shapes[index]}, got {blocks.shape}")
        start = self.starts[index]
        rows = self.buffer[start : start + blocks.shape[0]]  # (N_i, K/2): a view
        rows.copy_(blocks.packed)
        return Int4Blocks(rows, blocks.scales_and_zeros)


def _set_bias(layer: nn.Linear, bias: Tensor | None) -> None:
    """A float32 bias (frozen, like the weight), or none."""
    if bias is None:
        layer.register_parameter("bias", None)
    else:
        layer.bias = nn.Parameter(bias.float(), requires_grad=False)


class BF16Linear(nn.Linear):
    """``x Wᵀ (+ b)`` with ``W`` stored in bfloat16: the product runs in bfloat16 (float32 accumulation); the
    output, and the bias, are float32 (the dtype of qkv's residual stream)."""

    input_dtype = torch.bfloat16  # what it multiplies in: a caller may convert an input once for several layers
    output_dtype = torch.float32  # what it returns, whatever the input (SelfAttention.new_cache reads it)

    def __init__(self, weight: Tensor, bias: Tensor | None = None) -> None:
        nn.Module.__init__(self)  # nn.Linear's own __init__ would allocate and initialise a float32 weight
        self.out_features, self.in_features = int(weight.shape[0]), int(weight.shape[1])
        self.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight, requires_grad=False)
        _set_bias(self, bias)

    def forward(self, x: Tensor) -> Tensor:
        return _bf16_product(x, weight=self.weight, bias=self.bias)

    def functional(self) -> Callable[[Tensor], Tensor]:
        """:meth:`forward` as a function of ``x`` alone, on this layer's own tensors (no module look-ups per call:
        what a decoder calls a thousand times a token)."""
        return functools.partial(_bf16_product, weight=self.weight, bias=self.bias)


def _bf16_product(x: Tensor, *, weight: Tensor, bias: Tensor | None) -> Tensor:
    y = F.linear(x.to(torch.bfloat16), weight).float()
    return y if bias is None else y + bias


class Int4Linear(nn.Linear):
    """``x Wᵀ (+ b)`` with ``W`` held only as 4-bit blocks (4.5 bits per weight).

    Up to :data:`MAX_INT4_ROWS` rows (decoding) run PyTorch's 4-bit kernel, which reads the blocks directly.
    More rows (a prompt) dequantise ``W`` to bfloat16 for this one call and run a bfloat16 matrix product: the
    4-bit kernel is far slower per row there (BENCHMARKS.md, pretrained models), and keeping a bfloat16 copy for
    prompts would cost 2 bytes per weight of memory. :attr:`weight` is that dequantised matrix.
    """

    input_dtype = torch.bfloat16
    output_dtype = torch.float32
    packed: Tensor
    scales_and_zeros: Tensor

    def __init__(self, blocks: Int4Blocks, bias: Tensor | None = None) -> None:
        nn.Module.__init__(self)  # no float weight: the blocks are the weight
        self.out_features, self.in_features = blocks.shape
        if self.out_features % TILE:
            raise ShapeError(f"Int4Linear needs a multiple of {TILE} output features, got {self.out_features}")
        self.register_buffer("packed", blocks.packed)  # (N, K/2)
        self.register_buffer("scales_and_zeros", blocks.scales_and_zeros)  # (K/32, N, 2)
        _set_bias(self, bias)

    @property
    def weight(self) -> Tensor:  # type: ignore[override]  # (N, K) bfloat16, computed from the blocks
        return self.dequantised().T

    def dequantised(self) -> Tensor:
        """``Wᵀ`` ``(K, N)`` in bfloat16: ``(q - 8)·scale + zero``, block by block, as the 4-bit kernel computes it
        (``q·scale + (zero - 8·scale)`` would round the block's offset once for all its 32 weights: a shared error
        that adds up in every dot product)."""
        N, K = self.out_features, self.in_features
        tiles = N // TILE
        # The kernel's layout: per tile of 64 rows, K × 32 bytes; byte (k, j) holds rows j (low) and j + 32 (high).
        # Flipping a nibble's top bit turns q into q - 8 as a signed 4-bit number; moved to the top of a byte, it
        # reads as the int8 16·(q - 8), exactly, and a scale divided by 16 (a power of two: exact) takes it back.
        flipped = torch.bitwise_xor(self.packed, 0x88).view(tiles, K, TILE // 2)
        values = torch.empty(K, tiles, 2, TILE // 2, dtype=torch.uint8, device=flipped.device)  # (K, N) once viewed
        torch.bitwise_left_shift(flipped, 4, out=values[:, :, 0].permute(1, 0, 2))  # rows j: the low nibbles
        torch.bitwise_and(flipped, 0xF0, out=values[:, :, 1].permute(1, 0, 2))  # rows j + 32: the high ones
        sixteenths = values.view(torch.int8).view(K // GROUP, GROUP, N).to(torch.bfloat16)  # 16·(q - 8)
        # Contiguous (K/32, 1, N) factors: addcmul broadcasting a strided one is several times slower.
        scale = (self.scales_and_zeros[..., 0] / 16).unsqueeze(1)
        zero = self.scales_and_zeros[..., 1].unsqueeze(1).contiguous()
        return torch.addcmul(zero, sixteenths, scale, out=sixteenths).view(K, N)  # in place: one temporary fewer

    def forward(self, x: Tensor) -> Tensor:
        return _int4_product(x, packed=self.packed, scales_and_zeros=self.scales_and_zeros, bias=self.bias, layer=self)

    def functional(self) -> Callable[[Tensor], Tensor]:
        """:meth:`forward` as a function of ``x`` alone, on this layer's own tensors (no module look-ups per call)."""
        tensors = {"packed": self.packed, "scales_and_zeros": self.scales_and_zeros, "bias": self.bias}
        return functools.partial(_int4_product, **tensors, layer=self)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, 4-bit blocks of {GROUP}"

    @staticmethod
    def side_by_side(layers: Sequence[nn.Module]) -> Int4Linear | None:
        """One layer whose output ``(…, ΣN_i)`` is the outputs of ``layers`` side by side, on the same packed
        values (no copy), where :class:`SideBySide` laid them out so (each one's rows right after the
        previous one's, in one buffer); None otherwise. Its scales and zeros, and its bias, are concatenated
        copies (1/4 of the packed bytes). Every output is computed as the layer alone computes it."""
        if len(layers) < 2 or not all(type(layer) is Int4Linear for layer in layers):
            return None
        parts = [cast(Int4Linear, layer) for layer in layers]
        first = parts[0].packed
        if any(part.bias is None for part in parts) != all(part.bias is None for part in parts):
            return None  # some with a bias, some without
        end = first.storage_offset()
        for part in parts:
            packed = part.packed
            if (
                packed.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
                or packed.storage_offset() != end
                or not packed.is_contiguous()
                or packed.shape[1] != first.shape[1]
            ):
                return None
            end += packed.numel()
        rows = sum(part.out_features for part in parts)
        packed = first.as_strided((rows, first.shape[1]), (first.shape[1], 1))  # (ΣN_i, K/2): the shared buffer
        scales = torch.cat([part.scales_and_zeros for part in parts], dim=1)  # (K/32, ΣN_i, 2)
        biases: list[Tensor] = [part.bias for part in parts if part.bias is not None]
        return Int4Linear(Int4Blocks(packed, scales), torch.cat(biases) if biases else None)


def _int4_product(
    x: Tensor, *, packed: Tensor, scales_and_zeros: Tensor, bias: Tensor | None, layer: Int4Linear
) -> Tensor:
    if x.dim() == 2 and x.shape[0] <= MAX_INT4_ROWS:  # (rows, K): a decoder's token, no reshaping
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x.to(torch.bfloat16), packed, GROUP, scales_and_zeros)
    else:
        rows = x.numel() // layer.in_features
        flat = x.reshape(rows, layer.in_features).to(torch.bfloat16)  # (rows, K)
        if rows <= MAX_INT4_ROWS:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, packed, GROUP, scales_and_zeros)
        else:
            y = flat @ layer.dequantised()  # (rows, N)
        y = y.view(*x.shape[:-1], layer.out_features)
    y = y.float()
    return y if bias is None else y + bias


class BF16Embedding(nn.Embedding):
    """A token embedding stored in bfloat16 whose rows come out in float32 (the residual stream's dtype)."""

    def __init__(self, weight: Tensor) -> None:
        nn.Module.__init__(self)  # nn.Embedding's own __init__ would allocate and initialise a float32 table
        self.num_embeddings, self.embedding_dim = int(weight.shape[0]), int(weight.shape[1])
        self.padding_idx, self.max_norm, self.norm_type = None, None, 2.0
        self.scale_grad_by_freq, self.sparse = False, False
        self.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight, requires_grad=False)

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.weight).float()  # (…, D)
