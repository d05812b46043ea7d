"""A key/value cache for incremental decoding.

Decoding one token at a time, the keys and values of earlier tokens never change (under a causal mask no
earlier token sees a later one), so each layer keeps them and the new token only computes its own.
"""

from __future__ import annotations

import torch

from qkv.shapes import ShapeError, Tensor, describe

__all__ = ["KVCache"]


class KVCache:
    """One layer's keys and values, preallocated for ``capacity`` positions: ``(B, G, capacity, K)``."""

    def __init__(
        self,
        batch: int,
        kv_heads: int,
        capacity: int,
        head_width: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        self.keys = torch.zeros(batch, kv_heads, capacity, head_width, dtype=dtype, device=device)
        self.values = torch.zeros(batch, kv_heads, capacity, head_width, dtype=dtype, device=device)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]

    def append(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``T`` new positions ``(B, G, T, K)``; return every cached position so far ``(B, G, S, K)``."""
        T = keys.shape[2]
        B, G, _, K = self.keys.shape
        if keys.shape != values.shape or keys.shape[:2] != (B, G) or keys.shape[3] != K:
            raise ShapeError(
                f"cache holds {describe((B, G, self.capacity, K), 'BGSK')}, got keys "
                f"{describe(keys.shape, 'BGTK')} and values {describe(values.shape, 'BGTK')}"
            )
        if self.length + T > self.capacity:
            raise ShapeError(f"the cache holds {self.capacity} positions and has {self.length}; {T} more do not fit")
        end = self.length + T
        self.keys[:, :, self.length : end] = keys
        self.values[:, :, self.length : end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, G, S, K)

    def crop(self, length: int) -> None:
        """Forget every position from ``length`` on (keep the first ``length``)."""
        if not 0 <= length <= self.length:
            raise ShapeError(f"can crop the cache to 0…{self.length} positions, not {length}; give a length in range")
        self.length = length
