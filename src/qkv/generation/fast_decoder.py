"""Generation for pre-norm causal decoders, written as one function over the model's tensors: the fast twin of
:class:`~qkv.model.transformer.Transformer`'s forward pass with a KV cache.

Decoding one token at batch 1 is a few dozen small operations per layer (norms, projections, positions,
attention, the MLP) whose useful work takes microseconds; through the module tree each also pays for module
calls, shape checks and dtype conversions, which at one token per pass cost as much as the arithmetic.
:class:`FastDecoder` runs the same operations directly on the same weights (it holds the model's own
projection methods, norm gains and tables: no copies), on one preallocated cache tensor, with no checks inside
the loop. The maths is the model's own, called without the modules around it: the activations and the MLP
(:data:`~qkv.model.transformer.ACTIVATIONS`, :func:`~qkv.model.transformer.feed_forward`), the norms
(:func:`~qkv.model.transformer.norm_function`), RoPE (:func:`~qkv.attention.positions.rotate`) and the causal
mask (:func:`~qkv.attention.masks.causal`); only the loop over the blocks and the attention call are written
here.

Where a model's layers offer it, projections that multiply the same input run as one product: a projection type
with a ``side_by_side(layers)`` function (4-bit layers: :meth:`qkv.pretrained.lowbit.Int4Linear.side_by_side`)
returns one map whose output is the layers' outputs side by side, computed on the same weights — the queries,
keys and values in one call, the SwiGLU gate and hidden layer in another — which are then read as views of it.

One function serves every configuration the Transformer computes as a pre-norm causal decoder with an LM
head: GPT-2's conventions (learned or sinusoidal positions added to the embedding, LayerNorm with or without
shift, GELU / tanh-GELU / ReLU, biases or not, tied or untied output) and Llama's (RoPE, RMSNorm, SwiGLU,
grouped-query attention). :data:`COMPUTES` lists, field by field of the config, the values it computes and
:func:`supports` checks a model against it; anything else (ALiBi, post-norm, bidirectional attention, token
types, a normalised embedding, dropout in training, a config field not classified yet) stays on the Transformer.

It computes what the Transformer computes — the tests hold it to the Transformer's logits (1e-5 in float32)
and to its tokens — so the Transformer stays the readable reference. Attention is inspected the way the
Transformer is: a layer whose capture point is set (``SelfAttention.weights_hook``, as
:func:`~qkv.inspection.capture.capture_attention` sets it) runs the exact path
(:func:`~qkv.attention.kernels.exact_attention`) and hands its weights ``(1, H, T, S)`` to the hook, and every
layer runs it while the exact implementation is chosen (``qkv.attention.implementation("exact")``); the other
layers call PyTorch's fused kernel.

Shapes (batch 1 throughout): ``T`` new positions, ``S`` cached + new positions, ``H`` query heads, ``G``
key/value heads, ``K`` head width, ``D`` model width, ``V`` vocabulary.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from qkv.attention import masks
from qkv.attention.kernels import SDPA_HAS_GQA, current_implementation, exact_attention
from qkv.attention.layer import SelfAttention
from qkv.attention.positions import LearnedPositions, RotaryPositions, SinusoidalPositions, rotate
from qkv.errors import InputError
from qkv.model.config import TransformerConfig
from qkv.model.transformer import ACTIVATIONS, Block, Transformer, feed_forward, norm_function
from qkv.shapes import ShapeError, Tensor

__all__ = ["COMPUTES", "FastDecoder", "supports"]

Projection = Callable[[Tensor], Tensor]
Norm = Callable[[Tensor], Tensor]

# Every TransformerConfig field, and the values of it FastDecoder computes (None: every value). A config with a
# field missing here is not supported, so a new field keeps models on the Transformer until someone decides;
# tests/generation/test_fast_decoder.py holds this table to the config's fields and to the Transformer's logits.
COMPUTES: dict[str, tuple[object, ...] | None] = {
    "vocab_size": None,
    "context": None,
    "width": None,
    "layers": None,
    "heads": None,
    "kv_heads": None,
    "head_width": None,
    "mlp_width": None,
    "activation": None,
    "norm": None,
    "norm_eps": None,
    "norm_placement": ("pre",),
    "positions": ("none", "learned", "sinusoidal", "rope"),  # ALiBi biases the scores inside the layer
    "rope_theta": None,
    "causal": (True,),
    "attention_bias": None,
    "mlp_bias": None,
    "norm_bias": None,
    "token_types": (0,),
    "embedding_norm": (False,),
    "final_norm": None,
    "lm_head": (True,),
    "tie_embeddings": None,
    "dropout": None,  # dropout is the identity in evaluation; supports() keeps a model in training off
}


def supports(model: Transformer) -> bool:
    """Whether :class:`FastDecoder` computes ``model`` exactly: every field of its config takes a value
    :data:`COMPUTES` lists (a pre-norm, causal decoder with an LM head whose positions are none, learned,
    sinusoidal or RoPE, with no token types and no embedding norm), no dropout is active, and PyTorch's
    attention shares key/value heads itself if the model has fewer of them than query heads."""
    c: TransformerConfig = model.config
    if {field.name for field in dataclasses.fields(c)} != COMPUTES.keys():
        return False  # a field nobody has classified yet
    computed = all(allowed is None or getattr(c, name) in allowed for name, allowed in COMPUTES.items())
    dropping = model.training and c.dropout > 0
    grouped = c.attention.groups != c.heads
    return computed and not dropping and (SDPA_HAS_GQA or not grouped)


@dataclass(frozen=True)
class _Layer:
    """One block's weights, as the model holds them (bound ``forward`` methods skip ``nn.Module.__call__``)."""

    capture_point: SelfAttention  # its weights_hook, when set, takes this layer's attention weights
    attention_norm: Norm  # (T, D) → (T, D)
    input_dtype: torch.dtype | None  # what q, k, v multiply in (bfloat16 for lower precisions), if not x's
    to_q: Projection
    to_k: Projection
    to_v: Projection
    to_out: Projection
    mlp_norm: Norm
    mlp_input_dtype: torch.dtype | None  # what the MLP's first layer multiplies in, if not x's
    to_gate: Projection | None  # SwiGLU only
    to_hidden: Projection
    to_down: Projection
    to_qkv: Projection | None  # (T, D) → (T, (H + 2G)·K): queries, keys, values side by side, where offered
    to_gate_hidden: Projection | None  # (T, D) → (T, 2F): gate and hidden side by side (SwiGLU), where offered


def _projection(module: nn.Module) -> Projection:
    """``module``'s map without the attribute look-ups of its ``forward``: ``F.linear`` on its own weight and bias
    for a plain ``nn.Linear`` (what its ``forward`` calls), the function a layer offers as ``functional()``
    (low-bit layers), otherwise its ``forward``."""
    if type(module) is nn.Linear:
        return functools.partial(F.linear, weight=module.weight, bias=module.bias)
    functional = getattr(module, "functional", None)
    return cast(Projection, module.forward if functional is None else functional())


def _side_by_side(modules: Sequence[nn.Module]) -> Projection | None:
    """One map computing ``modules``' outputs side by side, where their type offers one (``side_by_side``)."""
    kind = type(modules[0])
    join = getattr(kind, "side_by_side", None)
    if join is None or any(type(module) is not kind for module in modules):
        return None
    joint = join(modules)
    return None if joint is None else _projection(joint)


def _columns(start: int, width: int) -> Projection:
    """The map ``y (…, N)`` → ``y[…, start : start + width]``, a view: one product's share."""
    return functools.partial(torch.narrow, dim=-1, start=start, length=width)


class FastDecoder:
    """Prefill a prompt, then decode one token at a time, into a cache for ``capacity`` positions.

    decoder = FastDecoder(model, capacity=len(prompt) + 100)
    logits = decoder.prefill(torch.tensor(prompt))     # (V,): the next token's logits
    logits = decoder.decode(int(logits.argmax()))      # (V,)
    """

    def __init__(self, model: Transformer, capacity: int) -> None:
        if not supports(model):
            raise InputError(
                "FastDecoder runs pre-norm causal decoders (no ALiBi, token types or embedding norm; "
                "fast_decoder.COMPUTES lists the config values it computes); use the Transformer"
            )
        config = model.config
        if not 1 <= capacity <= config.context:
            raise ShapeError(f"capacity must be 1…{config.context} positions (the model's context), got {capacity}")
        self.config = config
        self.heads, self.groups, self.head_width = config.heads, config.attention.groups, config.attention.key_width
        blocks = [cast(Block, block) for block in model.blocks]
        self.layers = []
        for block in blocks:
            attention, mlp = block.attention, block.mlp
            to_gate = None if mlp.to_gate is None else _projection(mlp.to_gate)
            to_hidden = _projection(mlp.to_hidden)
            to_gate_hidden = None if mlp.to_gate is None else _side_by_side([mlp.to_gate, mlp.to_hidden])
            if to_gate_hidden is not None:  # the MLP reads the joint product's halves
                width = config.hidden_width
                to_gate, to_hidden = _columns(0, width), _columns(width, width)
            self.layers.append(
                _Layer(
                    capture_point=attention,
                    attention_norm=norm_function(block.attention_norm),
                    input_dtype=getattr(attention.to_q, "input_dtype", None),
                    to_q=_projection(attention.to_q),
                    to_k=_projection(attention.to_k),
                    to_v=_projection(attention.to_v),
                    to_out=_projection(attention.to_out),
                    mlp_norm=norm_function(block.mlp_norm),
                    mlp_input_dtype=getattr(mlp.to_hidden, "input_dtype", None),
                    to_gate=to_gate,
                    to_hidden=to_hidden,
                    to_down=_projection(mlp.to_out),
                    to_qkv=_side_by_side([attention.to_q, attention.to_k, attention.to_v]),
                    to_gate_hidden=to_gate_hidden,
                )
            )
        self.activation = ACTIVATIONS[config.activation]
        K = self.head_width
        self.rope: tuple[Tensor, Tensor] | None = None  # RoPE's (cos, signed_sin) tables (P, K), for rotate()
        if config.positions == "rope":
            rope = cast(RotaryPositions, blocks[0].attention.rope)
            self.rope = (rope.cos, rope.signed_sin)
        absolute = model.embedding.positions
        self.positions: Tensor | None = None  # (P, D): added to the embedding (learned or sinusoidal)
        if isinstance(absolute, (LearnedPositions, SinusoidalPositions)):
            self.positions = absolute.vectors
        self.embed: Projection = model.embedding.tokens.forward
        self.final_norm = None if model.final_norm is None else norm_function(model.final_norm)
        assert model.lm_head is not None  # supports() checked it
        self.lm_head = _projection(model.lm_head)
        dtype = getattr(blocks[0].attention.to_k, "output_dtype", None)  # float32 for lower-precision weights
        if dtype is None:  # (a low-bit table's weight is computed when read: only a plain one is asked)
            dtype = model.embedding.tokens.weight.dtype
        device = next(model.parameters()).device
        shape = (len(blocks), 1, self.groups, capacity, K)  # (layers, B=1, G, capacity, K)
        self.keys = torch.empty(shape, dtype=dtype, device=device)  # a position is written before it is read
        self.values = torch.empty(shape, dtype=dtype, device=device)
        self._caches = list(zip(self.keys, self.values, strict=True))  # each layer's (1, G, capacity, K) views
        self.length = 0
        self._gqa = {"enable_gqa": True} if self.groups != self.heads else {}

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    def prefill(self, ids: Tensor) -> Tensor:
        """Run token ids ``(T,)`` after the cached positions; the logits ``(V,)`` after the last of them."""
        return self._forward(ids)

    def decode(self, token: int | Tensor) -> Tensor:
        """One step: the newest token (an id, or a tensor ``(1,)``) in, the next token's logits ``(V,)`` out."""
        ids = token if isinstance(token, Tensor) else torch.tensor([token], device=self.keys.device)
        return self._forward(ids)

    @torch.inference_mode()
    def _forward(self, ids: Tensor) -> Tensor:
        T = ids.shape[0]
        start, end = self.length, self.length + T
        if T == 0 or end > self.capacity:
            raise ShapeError(f"the cache holds {self.capacity} positions and has {start}; {T} more do not fit")
        H, G, K = self.heads, self.groups, self.head_width
        mask = None
        if T > 1 and start > 0:  # new queries see every cached key and the new keys up to their own position
            mask = masks.causal(T, end, device=ids.device)  # (T, S)
        exact = current_implementation() == "exact"
        rope = None if self.rope is None else (self.rope[0][start:end], self.rope[1][start:end])  # (T, K) twice
        x = self.embed(ids)  # (T, D)
        if self.positions is not None:
            x = x + self.positions[start:end].to(x.dtype)  # (T, D)
        for index, layer in enumerate(self.layers):
            h = layer.attention_norm(x)  # (T, D)
            h = h if layer.input_dtype is None else h.to(layer.input_dtype)  # once for the three projections
            if layer.to_qkv is not None:
                qkv = layer.to_qkv(h).view(T, H + 2 * G, K).transpose(0, 1)  # (H + 2G, T, K)
                qk = qkv[: H + G] if rope is None else rotate(qkv[: H + G], *rope)  # (H + G, T, K): one rotation
                queries, keys, values = qk[:H], qk[H:], qkv[H + G :]
            else:
                queries = layer.to_q(h).view(T, H, K).transpose(0, 1)  # (H, T, K)
                keys = layer.to_k(h).view(T, G, K).transpose(0, 1)  # (G, T, K)
                if rope is not None:
                    queries, keys = rotate(queries, *rope), rotate(keys, *rope)
                values = layer.to_v(h).view(T, G, K).transpose(0, 1)  # (G, T, K)
            cached_keys, cached_values = self._caches[index]  # (1, G, capacity, K) each
            cached_keys[0, :, start:end] = keys
            cached_values[0, :, start:end] = values
            all_keys, all_values = cached_keys[:, :, :end], cached_values[:, :, :end]  # (1, G, S, K)
            hook = layer.capture_point.weights_hook
            if hook is not None or exact:  # the readable path, which returns the weights
                attended, weights = exact_attention(queries[None], all_keys, all_values, causal=True)
                if hook is not None:
                    hook(weights)  # (1, H, T, S)
                attended = attended[0].transpose(0, 1).reshape(T, H * K)  # (1, H, T, K) → (T, H·K)
            elif T == 1:  # the H/G query heads sharing a key/value head, read as H/G queries of it (no mask)
                attended = F.scaled_dot_product_attention(queries.reshape(1, G, H // G, K), all_keys, all_values)
                attended = attended.view(1, H * K)  # (1, G, H/G, K) → (T, H·K)
            else:
                attended = F.scaled_dot_product_attention(
                    queries[None], all_keys, all_values, attn_mask=mask, is_causal=start == 0, **self._gqa
                )  # (1, H, T, K)
                attended = attended[0].transpose(0, 1).reshape(T, H * K)  # (T, H·K)
            x = x + layer.to_out(attended)  # (T, D)
            h = layer.mlp_norm(x)
            h = h if layer.mlp_input_dtype is None else h.to(layer.mlp_input_dtype)
            if layer.to_gate_hidden is not None:
                h = layer.to_gate_hidden(h)  # (T, 2F): to_gate and to_hidden read their halves
            x = x + feed_forward(h, layer.to_hidden, layer.to_gate, layer.to_down, self.activation)  # (T, D)
        self.length = end
        last = x[-1:]  # (1, D): only the last position's logits
        if self.final_norm is not None:
            last = self.final_norm(last)
        return self.lm_head(last)[0]  # (V,)
