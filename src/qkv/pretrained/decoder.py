"""Generation for Llama-family models, written as one function over the model's tensors: the fast twin of
:class:`~qkv.model.transformer.Transformer`'s forward pass with a KV cache.

Decoding one token at batch 1 is a few hundred small operations (30 layers of norms, projections, RoPE,
attention, SwiGLU) whose useful work takes microseconds; through the module tree each also pays for module
calls, shape checks and dtype conversions, which at one token per pass cost as much as the arithmetic.
:class:`LlamaDecoder` runs the same operations directly on the same weights (it holds the model's own
projection modules and norm gains: no copies), on one preallocated cache tensor, with no checks inside the loop.

It computes what the Transformer computes — the tests hold it to the Transformer's logits (1e-4 in
float32) and to its greedy tokens — so the Transformer stays the readable reference, and everything that
inspects a model (captured attention weights, traces) uses the Transformer. A model with a capture hook set
is therefore generated through the Transformer (:meth:`PretrainedModel.stream` checks).

Shapes (batch 1 throughout): ``T`` new positions, ``S`` cached + new positions, ``H`` query heads, ``G``
key/value heads, ``K`` head width, ``D`` model width, ``V`` vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from qkv.attention.kernels import _SDPA_HAS_GQA
from qkv.attention.layer import SelfAttention
from qkv.attention.positions import RotaryPositions
from qkv.model.config import TransformerConfig
from qkv.model.transformer import Block, Transformer
from qkv.shapes import ShapeError, Tensor

__all__ = ["LlamaDecoder", "supports"]

Projection = Callable[[Tensor], Tensor]


def supports(model: Transformer) -> bool:
    """Whether ``model`` is a Llama-family stack the decoder computes exactly (RoPE, RMSNorm, SwiGLU, pre-norm,
    causal, no biases, an LM head), with no attention capture hook set."""
    c: TransformerConfig = model.config
    llama = (
        c.positions == "rope"
        and c.norm == "rmsnorm"
        and c.norm_placement == "pre"
        and c.activation == "swiglu"
        and c.causal
        and c.lm_head
        and c.final_norm
        and not (c.attention_bias or c.mlp_bias or c.token_types or c.embedding_norm)
    )
    hooked = any(isinstance(m, SelfAttention) and m.weights_hook is not None for m in model.modules())
    return llama and not hooked


@dataclass(frozen=True)
class _Layer:
    """One block's weights, as the model holds them (bound ``forward`` methods skip ``nn.Module.__call__``)."""

    attention_norm: Tensor  # (D,)
    input_dtype: torch.dtype | None  # what the projections multiply in (bfloat16 for lower precisions), if not x's
    to_q: Projection
    to_k: Projection
    to_v: Projection
    to_out: Projection
    mlp_norm: Tensor  # (D,)
    to_gate: Projection
    to_hidden: Projection
    to_down: Projection


def _gain(module: nn.Module) -> Tensor:
    weight = cast(nn.RMSNorm, module).weight
    if weight is None:
        raise ShapeError("LlamaDecoder needs RMSNorm gains (elementwise_affine=True)")
    return weight


class LlamaDecoder:
    """Prefill a prompt, then decode one token at a time, into a cache for ``capacity`` positions.

    decoder = LlamaDecoder(model, capacity=len(prompt) + 100)
    logits = decoder.prefill(torch.tensor(prompt))     # (V,): the next token's logits
    logits = decoder.decode(int(logits.argmax()))      # (V,)
    """

    def __init__(self, model: Transformer, capacity: int) -> None:
        if not supports(model):
            raise ValueError("LlamaDecoder runs Llama-family models without capture hooks; use the Transformer")
        config = model.config
        if not 1 <= capacity <= config.context:
            raise ShapeError(f"capacity must be 1…{config.context} positions (the model's context), got {capacity}")
        self.config = config
        self.heads, self.groups, self.head_width = config.heads, config.attention.groups, config.attention.key_width
        self.eps = config.norm_eps
        blocks = [cast(Block, block) for block in model.blocks]
        self.layers = []
        for block in blocks:
            attention, mlp = block.attention, block.mlp
            if mlp.to_gate is None:
                raise ShapeError("LlamaDecoder needs a SwiGLU MLP (to_gate)")
            self.layers.append(
                _Layer(
                    attention_norm=_gain(block.attention_norm),
                    input_dtype=getattr(attention.to_q, "input_dtype", None),
                    to_q=attention.to_q.forward,
                    to_k=attention.to_k.forward,
                    to_v=attention.to_v.forward,
                    to_out=attention.to_out.forward,
                    mlp_norm=_gain(block.mlp_norm),
                    to_gate=mlp.to_gate.forward,
                    to_hidden=mlp.to_hidden.forward,
                    to_down=mlp.to_out.forward,
                )
            )
        rope = cast(RotaryPositions, blocks[0].attention.rope)
        K = self.head_width
        self.cos = rope.cos  # (P, K)
        # rotate_half(x)·sin = roll(x, K/2)·[-sin_first_half, sin_second_half]: one roll instead of slices and cat
        self.signed_sin = torch.cat([-rope.sin[:, : K // 2], rope.sin[:, K // 2 :]], dim=-1)  # (P, K)
        self.embed: Projection = model.embedding.tokens.forward
        self.final_norm = _gain(cast(nn.Module, model.final_norm))
        assert model.lm_head is not None  # supports() checked it
        self.lm_head: Projection = model.lm_head.forward
        table = model.embedding.tokens.weight
        dtype = getattr(blocks[0].attention.to_k, "output_dtype", table.dtype)  # float32 for lower-precision weights
        device = table.device
        shape = (len(blocks), self.groups, capacity, K)  # (layers, G, capacity, K)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0
        if self.groups != self.heads and not _SDPA_HAS_GQA:
            raise ShapeError("grouped-query attention in LlamaDecoder needs PyTorch 2.5 or later")
        self._gqa = {"enable_gqa": True} if self.groups != self.heads else {}

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]

    def prefill(self, ids: Tensor) -> Tensor:
        """Run token ids ``(T,)`` after the cached positions; the logits ``(V,)`` after the last of them."""
        return self._forward(ids)

    def decode(self, token: int) -> Tensor:
        """One step: the newest token in, the next token's logits ``(V,)`` out."""
        return self._forward(torch.tensor([token], device=self.keys.device))

    def _rope(self, x: Tensor, start: int, end: int) -> Tensor:
        """Rotate ``x (heads, T, K)`` at positions ``start…end-1`` (RoPE, half-split pairs)."""
        return torch.addcmul(x * self.cos[start:end], x.roll(self.head_width // 2, dims=-1), self.signed_sin[start:end])

    @torch.inference_mode()
    def _forward(self, ids: Tensor) -> Tensor:
        T = ids.shape[0]
        start, end = self.length, self.length + T
        if T == 0 or end > self.capacity:
            raise ShapeError(f"the cache holds {self.capacity} positions and has {start}; {T} more do not fit")
        H, G, K, eps = self.heads, self.groups, self.head_width, self.eps
        D = self.config.width
        mask = None
        if T > 1 and start > 0:  # new queries see every cached key and the new keys up to their own position
            mask = torch.ones(T, end, dtype=torch.bool).tril(diagonal=start)  # (T, S)
        x = self.embed(ids)  # (T, D)
        for index, layer in enumerate(self.layers):
            h = F.rms_norm(x, (D,), layer.attention_norm, eps)  # (T, D)
            h = h if layer.input_dtype is None else h.to(layer.input_dtype)  # once for the three projections
            queries = self._rope(layer.to_q(h).view(T, H, K).transpose(0, 1), start, end)  # (H, T, K)
            keys = self._rope(layer.to_k(h).view(T, G, K).transpose(0, 1), start, end)  # (G, T, K)
            self.keys[index, :, start:end] = keys
            self.values[index, :, start:end] = layer.to_v(h).view(T, G, K).transpose(0, 1)  # (G, T, K)
            attended = F.scaled_dot_product_attention(
                queries[None],  # (1, H, T, K)
                self.keys[index, None, :, :end],  # (1, G, S, K)
                self.values[index, None, :, :end],
                attn_mask=mask,
                is_causal=T > 1 and start == 0,
                **self._gqa,
            )  # (1, H, T, K)
            x = x + layer.to_out(attended[0].transpose(0, 1).reshape(T, H * K))  # (T, D)
            h = F.rms_norm(x, (D,), layer.mlp_norm, eps)
            h = h if layer.input_dtype is None else h.to(layer.input_dtype)
            x = x + layer.to_down(F.silu(layer.to_gate(h)) * layer.to_hidden(h))  # (T, D)
        self.length = end
        last = F.rms_norm(x[-1:], (D,), self.final_norm, eps)  # (1, D): only the last position's logits
        return self.lm_head(last)[0]  # (V,)
