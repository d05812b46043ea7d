"""Mixed precision for training: float32 weights and optimizer, bfloat16 matrix products where the chip has them.

``precision="bfloat16"`` runs the model's forward pass under :func:`torch.autocast`: the projections and the MLP
multiply in bfloat16 (several times the float32 rate on CPUs with AMX or AVX-512 BF16), while the
weights, their gradients, the optimizer's moments, layer norms, the attention scores and softmax
(:class:`~qkv.attention.SelfAttention` keeps them in float32 on the CPU) and the loss stay float32. This is
the usual mixed-precision recipe (no loss scaling is needed: bfloat16 has float32's exponent range).

``"auto"`` picks bfloat16 where the device multiplies it natively and float32 elsewhere;
:func:`resolve_precision` turns it into the concrete choice that a run records in its checkpoint, so that a
resumed run computes the same way.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from qkv.errors import ConfigError
from qkv.training.config import COMPUTE_PRECISIONS, ComputePrecision

__all__ = [
    "COMPUTE_PRECISIONS",
    "ComputePrecision",
    "ResolvedPrecision",
    "mixed_precision",
    "native_bfloat16",
    "resolve_precision",
]

# ComputePrecision (how the forward pass multiplies) is defined beside TrainConfig, which imports no PyTorch.
ResolvedPrecision = Literal["float32", "bfloat16"]


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (CPU: AMX or AVX-512 BF16; CUDA: Ampere+)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> ResolvedPrecision:
    """``"auto"`` → ``"bfloat16"`` where :func:`native_bfloat16`, else ``"float32"``; the others stay."""
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    if precision == "float32":
        return "float32"
    if precision == "bfloat16":
        return "bfloat16"
    raise ConfigError(f"precision must be one of {', '.join(COMPUTE_PRECISIONS)}, got {precision!r}")


def mixed_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager[object]:
    """The context a forward pass runs in: autocast to bfloat16, or nothing for float32."""
    if resolve_precision(precision, device) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
