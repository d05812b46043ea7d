"""SelfAttention: queries, keys and values as linear projections of one embedding.

The article stores three vectors per word; a real layer stores one embedding per token and *extracts* the
query, key and value from it with three learned linear maps (``to_q``, ``to_k``, ``to_v``). Several heads
do this in parallel on slices of the width, and ``to_out`` mixes the heads' outputs back into the model
width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from qkv.attention.config import AttentionConfig
from qkv.attention.kernels import attend
from qkv.attention.kv_cache import KVCache
from qkv.attention.positions import ALiBiPositions, RotaryPositions
from qkv.shapes import ShapeError, Tensor, require_rank

__all__ = ["AttentionConfig", "SelfAttention"]


class SelfAttention(nn.Module):
    """Multi-head (or grouped-query) self-attention over ``x (B, T, D)``."""

    def __init__(self, config: AttentionConfig) -> None:
        super().__init__()
        self.config = config
        H, G, K, D = config.heads, config.groups, config.key_width, config.width
        self.to_q = nn.Linear(D, H * K, bias=config.bias)
        self.to_k = nn.Linear(D, G * K, bias=config.bias)
        self.to_v = nn.Linear(D, G * K, bias=config.bias)
        self.to_out = nn.Linear(H * K, D, bias=config.bias)
        self.rope = RotaryPositions(K, config.context, config.rope_theta) if config.positions == "rope" else None
        self.alibi = ALiBiPositions(H, config.context) if config.positions == "alibi" else None
        # A capture point: when set, this layer takes the exact path whatever the switch (kernels.implementation)
        # says, and hands the weights (B, H, T, S) it computed to the hook on every call.
        self.weights_hook: Callable[[Tensor], None] | None = None

    def forward(self, x: Tensor, *, mask: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """``x (B, T, D)`` → ``(B, T, D)``.

        ``mask`` is boolean, ``True`` where allowed, broadcastable to ``(B, H, T, S)`` (e.g. a padding mask
        ``(B, 1, 1, S)``). With a ``cache``, ``x`` holds only the new tokens; their keys and values are
        appended and attention runs over every cached position (``S = cached + T``).
        """
        output, _ = self.attend(x, mask=mask, cache=cache, need_weights=False)
        return output

    def attend(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """Like :meth:`forward`, also returning the weights ``(B, H, T, S)`` whenever the exact path ran:
        ``need_weights`` (or a :attr:`weights_hook`) makes it run, as does the ``"exact"`` implementation."""
        require_rank("SelfAttention input", x, "BTD")
        B, T, D = x.shape
        if self.config.width != D:
            raise ShapeError(f"SelfAttention expects width D={self.config.width}, got input {tuple(x.shape)}")
        H, G, K = self.config.heads, self.config.groups, self.config.key_width
        offset = cache.length if cache is not None else 0

        # Under bfloat16 autocast (qkv.training.precision) the projections multiply in bfloat16, but scores and
        # softmax stay float32: more exact, and PyTorch's CPU attention backward is far slower in bfloat16.
        float32_scores = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        queries, keys, values = self._project(x, upcast=float32_scores)  # (B, T, H·K), (B, T, G·K) twice
        queries = queries.view(B, T, H, K).transpose(1, 2)  # (B, H, T, K)
        keys = keys.view(B, T, G, K).transpose(1, 2)  # (B, G, T, K)
        values = values.view(B, T, G, K).transpose(1, 2)  # (B, G, T, K)
        if self.rope is not None:
            queries, keys = self.rope(queries, offset), self.rope(keys, offset)
        if cache is not None:
            keys, values = cache.append(keys, values)  # (B, G, S, K)
        if float32_scores:
            with torch.autocast("cpu", enabled=False):
                output, weights = self._heads(queries, keys, values, offset, mask, need_weights)
        else:
            output, weights = self._heads(queries, keys, values, offset, mask, need_weights)
        output = output.transpose(1, 2).reshape(B, T, H * K)  # (B, T, H·K): heads side by side
        return self.to_out(output), weights

    def _project(self, x: Tensor, *, upcast: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values of ``x (B, T, D)``, each ``(B, T, heads·K)``; float32 if ``upcast``.

        In training, the three maps run as one product with their weights stacked: one larger matrix product,
        and one gradient product for each of the input and the weights, instead of three small ones each (the
        same numbers, fewer and better-shaped calls). At inference the weights are not re-stacked on every
        token, and projections of other kinds (e.g. low-bit ones) run as they are.
        """
        maps = (self.to_q, self.to_k, self.to_v)
        if self.training and torch.is_grad_enabled() and all(type(m) is nn.Linear for m in maps):
            weight = torch.cat([m.weight for m in maps])  # ((H + 2G)·K, D)
            bias = torch.cat([m.bias for m in maps]) if self.config.bias else None  # ((H + 2G)·K,)
            qkv = nn.functional.linear(x, weight, bias)  # (B, T, (H + 2G)·K)
            qkv = qkv.float() if upcast else qkv
            H, G, K = self.config.heads, self.config.groups, self.config.key_width
            queries, keys, values = qkv.split([H * K, G * K, G * K], dim=-1)
            return queries, keys, values
        projected = (m(x) for m in maps)
        queries, keys, values = (p.float() for p in projected) if upcast else projected
        return queries, keys, values

    def _heads(
        self, queries: Tensor, keys: Tensor, values: Tensor, offset: int, mask: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """Attention per head: ``(B, H, T, K)`` queries over ``(B, G, S, K)`` keys and values → ``(B, H, T, K)``.

        With a :attr:`weights_hook`, the exact path runs and its weights go to the hook.
        """
        T, S = queries.shape[2], keys.shape[2]
        bias = self.alibi(T, S, offset).to(queries.dtype) if self.alibi is not None else None  # (H, T, S)
        hook = self.weights_hook
        output, weights = attend(
            queries,
            keys,
            values,
            causal=self.config.causal,
            mask=mask,
            bias=bias,
            need_weights=need_weights or hook is not None,
        )  # (B, H, T, K), (B, H, T, S) or None
        if hook is not None:
            assert weights is not None  # need_weights=True takes the exact path, which returns them
            hook(weights.detach())
        return output, weights

    def new_cache(
        self,
        batch: int,
        capacity: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> KVCache:
        """An empty cache shaped for this layer, in the dtype of the keys ``to_k`` computes."""
        weight = self.to_k.weight
        # A projection that stores its weight in lower precision (qkv.pretrained.lowbit) names its output dtype.
        output_dtype: torch.dtype = getattr(self.to_k, "output_dtype", weight.dtype)
        return KVCache(
            batch,
            self.config.groups,
            capacity,
            self.config.key_width,
            dtype=dtype or output_dtype,
            device=device or weight.device,
        )
