"""Positional encodings: attention is a set operation, so word order must be put in by hand.

Five schemes, in the three places a position can enter:

* ``"none"``: nothing; a self-attention layer is then permutation-equivariant (shuffle the words and the
  outputs only shuffle).
* ``"learned"`` and ``"sinusoidal"`` add a position vector to each token's embedding, once, at the input
  (:class:`LearnedPositions`, :class:`SinusoidalPositions`).
* ``"rope"`` rotates queries and keys inside every attention layer (:class:`RotaryPositions`), so their dot
  product depends on the distance between positions.
* ``"alibi"`` adds a per-head distance penalty to the scores inside every attention layer
  (:class:`ALiBiPositions`).

Every module takes ``offset``, the absolute position of the first token (the length of the KV cache before
this step), so incremental decoding sees the same positions as a full recomputation.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from qkv.attention.config import POSITION_SCHEMES, PositionScheme
from qkv.errors import InputError
from qkv.shapes import ShapeError, Tensor

__all__ = [
    "ABSOLUTE",
    "POSITION_SCHEMES",
    "ALiBiPositions",
    "LearnedPositions",
    "PositionScheme",
    "RotaryPositions",
    "SinusoidalPositions",
    "alibi_slopes",
    "rope_tables",
    "rotate",
]

ABSOLUTE: tuple[PositionScheme, ...] = ("learned", "sinusoidal")  # added to the embedding at the input


def _check_range(offset: int, T: int, context: int) -> None:
    if offset < 0 or offset + T > context:
        raise ShapeError(
            f"positions {offset}…{offset + T - 1} are outside the model's context of {context} positions; "
            f"crop the input to at most {context} tokens"
        )


class LearnedPositions(nn.Module):
    """A trained vector per position (BERT, GPT-2), added to the token embedding."""

    def __init__(self, context: int, width: int) -> None:
        super().__init__()
        self.context = context
        self.table = nn.Embedding(context, width)

    @property
    def vectors(self) -> Tensor:
        """``(context, D)``: the vector added at each position (the trained table itself, not a copy)."""
        return self.table.weight

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        T = x.shape[1]
        _check_range(offset, T, self.context)
        return x + self.vectors[offset : offset + T]  # (B, T, D) + (T, D)


def sinusoid_table(context: int, width: int) -> Tensor:
    """``(context, width)``: even features ``sin(p / 10000^(2i/D))``, odd features ``cos(…)``."""
    position = torch.arange(context, dtype=torch.float64).unsqueeze(1)  # (P, 1)
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float64) * (-math.log(10000.0) / width))
    table = torch.zeros(context, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return table.float()


class SinusoidalPositions(nn.Module):
    """The original transformer's fixed sine/cosine position vectors, added to the token embedding."""

    table: Tensor

    def __init__(self, context: int, width: int) -> None:
        super().__init__()
        self.context = context
        self.register_buffer("table", sinusoid_table(context, width), persistent=False)

    @property
    def vectors(self) -> Tensor:
        """``(context, D)``: the vector added at each position (float32)."""
        return self.table

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        T = x.shape[1]
        _check_range(offset, T, self.context)
        return x + self.vectors[offset : offset + T].to(x.dtype)  # (B, T, D) + (T, D)


@functools.lru_cache(maxsize=16)
def rope_tables(head_width: int, context: int, theta: float) -> tuple[Tensor, Tensor]:
    """RoPE's tables ``(cos, signed_sin)``, each ``(context, K)`` (float32, CPU), for :func:`rotate`.

    Position ``p`` turns the feature pair ``(i, i + K/2)`` by the angle ``p · θ_i``, ``θ_i = theta^(-2i/K)``; row
    ``p`` of ``cos`` holds the cosines (twice over: once for each half), and of ``signed_sin`` the sines with the
    first half negated (the sign :func:`rotate` needs). Computed once per process and shared: every layer of a
    model, and every model, with the same sizes holds the same two tensors (SmolLM2's 30 layers would otherwise
    hold 30 copies of 4 MB each). Nothing writes to them in place.
    """
    with torch.inference_mode(False):  # plain tensors, usable in training even if first asked for in inference
        inverse = 1.0 / (theta ** (torch.arange(0, head_width, 2, dtype=torch.float64, device="cpu") / head_width))
        angles = torch.outer(torch.arange(context, dtype=torch.float64, device="cpu"), inverse)  # (P, K/2)
        cos, sin = angles.cos(), angles.sin()  # (P, K/2) each
        return torch.cat([cos, cos], dim=-1).float(), torch.cat([-sin, sin], dim=-1).float()  # (P, K) each


def rotate(x: Tensor, cos: Tensor, signed_sin: Tensor) -> Tensor:
    """RoPE: ``x (…, T, K)`` with each feature pair ``(i, i + K/2)`` turned by its angle at each position, given
    the rows ``(T, K)`` of :func:`rope_tables` for those positions.

    For halves ``x = [a, b]`` and the angle's ``c = cos``, ``s = sin``, the pair turns to
    ``[a·c - b·s, b·c + a·s]``: Hugging Face writes it ``x·cos + rotate_half(x)·sin`` with
    ``rotate_half(x) = [-b, a]``. Here ``rotate_half(x)·sin = roll(x, K/2)·[-s, s]`` (``signed_sin``), so the
    rotation is one roll and one fused multiply-add: the same numbers in fewer operations, which matters at one
    token per step (the model's :class:`RotaryPositions` and the fast decoder both call this).
    """
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)  # (…, T, K)


class RotaryPositions(nn.Module):
    """RoPE: rotate each pair of features ``(i, i + K/2)`` of queries and keys by an angle ``p · θ_i``.

    The dot product of a query at position ``p`` and a key at ``p'`` then depends on ``p - p'`` only. Uses
    the half-split pairing of Llama/GPT-NeoX as written in Hugging Face ``transformers``. ``cos`` and
    ``signed_sin`` are the tables ``(context, K)`` of :func:`rope_tables` that :func:`rotate` takes.
    """

    cos: Tensor
    signed_sin: Tensor

    def __init__(self, head_width: int, context: int, theta: float = 10000.0) -> None:
        super().__init__()
        if head_width % 2:
            raise InputError(f"RoPE rotates pairs of features: the head width must be even, got {head_width}")
        self.context = context
        cos, signed_sin = rope_tables(head_width, context, float(theta))
        device = torch.get_default_device()  # as a table computed here would be placed
        self.register_buffer("cos", cos.to(device), persistent=False)
        self.register_buffer("signed_sin", signed_sin.to(device), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate ``x`` ``(B, heads, T, K)`` whose first position is ``offset``."""
        T = x.shape[2]
        _check_range(offset, T, self.context)
        cos = self.cos[offset : offset + T].to(x.dtype)  # (T, K)
        signed_sin = self.signed_sin[offset : offset + T].to(x.dtype)  # (T, K)
        return rotate(x, cos, signed_sin)  # (B, heads, T, K)


def alibi_slopes(heads: int) -> Tensor:
    """ALiBi's per-head slopes: a geometric sequence ``2^(-8/n), 2^(-16/n), …`` (Press et al., 2022).

    For a head count that is not a power of two, the closest power's slopes are completed with every other
    slope of the next power, as the paper's reference code does.
    """

    def powers(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(heads))
    slopes = powers(closest)
    if closest != heads:
        slopes += powers(2 * closest)[0::2][: heads - closest]
    return torch.tensor(slopes)


class ALiBiPositions(nn.Module):
    """ALiBi: add ``-slope_h · |t - s|`` to the score of query ``t`` and key ``s`` (no position vectors)."""

    slopes: Tensor

    def __init__(self, heads: int, context: int) -> None:
        super().__init__()
        self.context = context
        self.register_buffer("slopes", alibi_slopes(heads), persistent=False)

    def forward(self, T: int, S: int, offset: int = 0) -> Tensor:
        """The bias ``(H, T, S)`` for ``T`` queries starting at absolute position ``offset`` over ``S`` keys."""
        _check_range(offset, T, self.context)
        query_positions = torch.arange(offset, offset + T, device=self.slopes.device)  # (T,)
        key_positions = torch.arange(S, device=self.slopes.device)  # (S,)
        distance = (query_positions[:, None] - key_positions[None, :]).abs()  # (T, S)
        return -self.slopes[:, None, None] * distance  # (H, T, S)
