"""The transformer: embeddings, a stack of identical blocks, a final norm, and (optionally) logits.

    block(x) = x + attention(norm(x)), then x + mlp(norm(x))        (pre-norm: GPT-2, Llama)
    block(x) = norm(x + attention(x)), then norm(x + mlp(x))        (post-norm: BERT)

Every choice comes from :class:`~qkv.model.config.TransformerConfig`; no component asks which family it is.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from qkv.attention import masks
from qkv.attention.kv_cache import KVCache
from qkv.attention.layer import SelfAttention
from qkv.attention.positions import LearnedPositions, SinusoidalPositions
from qkv.errors import InputError
from qkv.model.config import Activation, TransformerConfig
from qkv.model.memory import check_memory
from qkv.shapes import ShapeError, Tensor, require_rank

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Block",
    "Embedding",
    "Transformer",
    "check_token_ids",
    "feed_forward",
    "make_norm",
    "norm_function",
]

Map = Callable[[Tensor], Tensor]


def make_norm(config: TransformerConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.width, eps=config.norm_eps)
    return nn.LayerNorm(config.width, eps=config.norm_eps, bias=config.norm_bias)


def norm_function(norm: nn.Module) -> Map:
    """The map a :func:`make_norm` module computes, as the functional call its ``forward`` makes on its own gain,
    shift and epsilon (not copies): the same numbers without the module call."""
    if isinstance(norm, nn.RMSNorm):
        return functools.partial(F.rms_norm, normalized_shape=norm.normalized_shape, weight=norm.weight, eps=norm.eps)
    if isinstance(norm, nn.LayerNorm):
        return functools.partial(
            F.layer_norm, normalized_shape=norm.normalized_shape, weight=norm.weight, bias=norm.bias, eps=norm.eps
        )
    raise TypeError(f"norm_function takes the nn.LayerNorm or nn.RMSNorm of make_norm, got {type(norm).__name__}")


def _dropout(module: nn.Dropout, x: Tensor) -> Tensor:
    """``module(x)``, skipped where it is the identity (rate 0, or evaluation).

    A call that does nothing still pays for a module call and ``F.dropout``'s checks, which at one token per
    forward pass add up to a visible share of the decoding time (BENCHMARKS.md, generation).
    """
    return module(x) if module.training and module.p > 0 else x


def gelu_tanh(x: Tensor) -> Tensor:
    """GPT-2's GELU, ``0.5·x·(1 + tanh(u))`` with ``u = √(2/π)·(x + 0.044715·x³)``.

    Under ``torch.compile`` it is written as the same function ``x·σ(2u)`` (since ``1 + tanh(u) = 2σ(2u)``):
    inductor fuses either into one loop, and its sigmoid is cheaper than its tanh. Eagerly, PyTorch's own
    kernel is one pass where the sigmoid form would be five.
    """
    if torch.compiler.is_compiling():
        return gelu_tanh_as_sigmoid(x)
    return F.gelu(x, approximate="tanh")


def gelu_tanh_as_sigmoid(x: Tensor) -> Tensor:
    """``x·σ(2u)``, ``u = √(2/π)·(x + 0.044715·x³)``: :func:`gelu_tanh` written with a sigmoid."""
    return x * torch.sigmoid(_TWO_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))


_TWO_SQRT_2_OVER_PI = 2 * math.sqrt(2 / math.pi)

# Each activation, as the MLP applies it: to the hidden layer, or (SwiGLU) to the gate.
ACTIVATIONS: dict[Activation, Map] = {"gelu": F.gelu, "gelu_tanh": gelu_tanh, "relu": F.relu, "swiglu": F.silu}


def feed_forward(x: Tensor, to_hidden: Map, to_gate: Map | None, to_out: Map, activation: Map) -> Tensor:
    """The MLP's map of ``x (…, D)``: ``to_out(activation(to_hidden(x)))``, or with a gate (SwiGLU)
    ``to_out(activation(to_gate(x)) · to_hidden(x))``. The maps are callables so that the fast decoder runs
    the same function on the same weights without the module calls."""
    hidden = to_hidden(x)  # (…, F)
    hidden = activation(hidden) if to_gate is None else activation(to_gate(x)) * hidden  # (…, F)
    return to_out(hidden)  # (…, D)


class MLP(nn.Module):
    """The position-wise feed-forward block: the same two-layer network applied to every token alone.

    SwiGLU (Llama) gates the hidden layer: ``to_out(silu(to_gate(x)) * to_hidden(x))``.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        D, F_ = config.width, config.hidden_width
        self.activation = config.activation
        self.to_hidden = nn.Linear(D, F_, bias=config.mlp_bias)
        self.to_gate = nn.Linear(D, F_, bias=config.mlp_bias) if config.activation == "swiglu" else None
        self.to_out = nn.Linear(F_, D, bias=config.mlp_bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, T, D)`` → ``(B, T, D)``."""
        return feed_forward(x, self.to_hidden, self.to_gate, self.to_out, ACTIVATIONS[self.activation])


class Block(nn.Module):
    """Self-attention then the MLP, each wrapped in a residual connection and a norm."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.pre_norm = config.norm_placement == "pre"
        self.attention = SelfAttention(config.attention)
        self.attention_norm = make_norm(config)
        self.mlp = MLP(config)
        self.mlp_norm = make_norm(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, *, mask: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        if self.pre_norm:
            x = x + _dropout(self.dropout, self.attention(self.attention_norm(x), mask=mask, cache=cache))
            return x + _dropout(self.dropout, self.mlp(self.mlp_norm(x)))
        x = self.attention_norm(x + _dropout(self.dropout, self.attention(x, mask=mask, cache=cache)))
        return self.mlp_norm(x + _dropout(self.dropout, self.mlp(x)))


class Embedding(nn.Module):
    """Token vectors, plus position vectors (learned or sinusoidal) and token-type vectors where configured."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.width)
        self.positions: nn.Module | None = None
        if config.positions == "learned":
            self.positions = LearnedPositions(config.context, config.width)
        elif config.positions == "sinusoidal":
            self.positions = SinusoidalPositions(config.context, config.width)
        self.token_types = nn.Embedding(config.token_types, config.width) if config.token_types else None
        self.norm = make_norm(config) if config.embedding_norm else None
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: Tensor, *, offset: int = 0, token_types: Tensor | None = None) -> Tensor:
        x = self.tokens(ids)  # (B, T, D)
        if self.positions is not None:
            x = self.positions(x, offset)
        if self.token_types is not None:
            types = torch.zeros_like(ids) if token_types is None else token_types
            x = x + self.token_types(types)
        if self.norm is not None:
            x = self.norm(x)
        return _dropout(self.dropout, x)


_RANDOM_INITIALISERS = frozenset(
    {
        nn.init.uniform_,
        nn.init.normal_,
        nn.init.trunc_normal_,
        nn.init.kaiming_uniform_,
        nn.init.kaiming_normal_,
        nn.init.xavier_uniform_,
        nn.init.xavier_normal_,
    }
)


class _SkipRandomInitialisation(TorchFunctionMode):
    """Inside, ``torch.nn.init``'s random fills leave their tensor as ``torch.empty`` made it (memory never
    written, so never resident). A torch-function mode is this thread's alone: a model built meanwhile in
    another thread is initialised as usual. (The constant fills, ``ones_`` and ``zeros_`` of norms and biases,
    do not dispatch here and still run: vectors, cheap.)"""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _RANDOM_INITIALISERS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def check_token_ids(ids: Tensor, size: int, what: str = "token id", fix: str = "") -> None:
    """Refuse ids that are not integers or fall outside ``0 … size - 1`` (one min/max over the batch), naming
    an offending id and where it is: an embedding lookup would raise a bare IndexError (or fail on a GPU)."""
    if ids.dtype not in (torch.int64, torch.int32):  # what an embedding lookup takes
        raise ShapeError(f"{what}s must be an int64 (or int32) tensor, got {ids.dtype}")
    if ids.numel() == 0:
        return
    smallest, largest = torch.aminmax(ids)
    low, high = int(smallest), int(largest)
    if low < 0 or high >= size:
        bad = low if low < 0 else high
        where = tuple(int(i) for i in (ids == bad).nonzero()[0])
        raise InputError(f"{what} {bad} at {where} is out of range: the model has {size:,} {what}s, 0…{size - 1}{fix}")


class Transformer(nn.Module):
    """Token ids ``(B, T)`` → logits ``(B, T, V)`` (or hidden states ``(B, T, D)`` without an LM head).

    Before anything is allocated, the config's memory (:meth:`TransformerConfig.estimated_bytes`) is compared
    with what the machine has free, and a model that cannot fit is refused with
    :class:`~qkv.errors.TooLargeError`. ``initialise=False`` is for loaders that replace every parameter right
    away: the random initialisation is skipped (it would only be overwritten) and so is the memory check, which
    such a caller makes itself for the tensors it will hold.
    """

    def __init__(self, config: TransformerConfig, *, initialise: bool = True) -> None:
        super().__init__()
        if initialise:
            check_memory(
                config.estimated_bytes(),
                f"a model of {config.parameter_count():,} parameters ({config.layers:,} layers of width "
                f"{config.width:,}, vocabulary {config.vocab_size:,}, context {config.context:,})",
                "choose fewer layers or a smaller width, vocabulary or context",
            )
        self.config = config
        with contextlib.nullcontext() if initialise else _SkipRandomInitialisation():
            self.embedding = Embedding(config)
            self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
            self.final_norm = make_norm(config) if config.final_norm else None
            self.lm_head: nn.Linear | None = None
            if config.lm_head:
                self.lm_head = nn.Linear(config.width, config.vocab_size, bias=False)
                if config.tie_embeddings:
                    self.lm_head.weight = self.embedding.tokens.weight
        if initialise:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: N(0, 0.02), residual output projections scaled by 1/√(2·layers)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.layers)
        for name, parameter in self.named_parameters():
            if parameter.dim() < 2:
                continue  # biases and norm gains keep PyTorch's defaults (0 and 1)
            std = residual_std if name.endswith("to_out.weight") else 0.02
            nn.init.normal_(parameter, mean=0.0, std=std)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def hidden_states(
        self,
        ids: Tensor,
        *,
        keep: Tensor | None = None,
        token_types: Tensor | None = None,
        cache: list[KVCache] | None = None,
    ) -> Tensor:
        """The final hidden states ``(B, T, D)`` (after the final norm, if any).

        ``keep`` ``(B, S)`` is ``True`` for real tokens and ``False`` for padding, over every key position
        (the cached ones included). With ``cache`` (one :class:`KVCache` per block, see :meth:`new_cache`),
        ``ids`` are only the new tokens.
        """
        require_rank("token ids", ids, "BT")
        if not torch.compiler.is_compiling():  # training compiles over ids its own tokenizer made
            check_token_ids(ids, self.config.vocab_size, "token id", "; encode text with this model's own tokenizer")
            if token_types is not None and self.config.token_types:
                check_token_ids(token_types, self.config.token_types, "token type")
        if cache is not None and len(cache) != len(self.blocks):
            raise ShapeError(f"need one cache per block ({len(self.blocks)}), got {len(cache)}")
        offset = cache[0].length if cache else 0
        end, context = offset + ids.shape[1], self.config.context
        if end > context:  # every scheme, "none" included: the context bounds the model, not only its positions
            raise ShapeError(
                f"positions {offset}…{end - 1} are outside the model's context of {context} positions; "
                f"crop the input to at most {context} tokens"
            )
        mask = masks.padding(keep) if keep is not None else None  # (B, 1, 1, S)
        if keep is not None and keep.shape != (ids.shape[0], offset + ids.shape[1]):
            raise ShapeError(
                f"keep must be (B, S) = {(ids.shape[0], offset + ids.shape[1])} for ids {tuple(ids.shape)} "
                f"after {offset} cached positions, got {tuple(keep.shape)}"
            )
        x = self.embedding(ids, offset=offset, token_types=token_types)  # (B, T, D)
        for index, block in enumerate(self.blocks):
            x = block(x, mask=mask, cache=cache[index] if cache is not None else None)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x

    def forward(
        self,
        ids: Tensor,
        *,
        keep: Tensor | None = None,
        token_types: Tensor | None = None,
        cache: list[KVCache] | None = None,
    ) -> Tensor:
        """Logits ``(B, T, V)`` when the model has an LM head, otherwise the hidden states ``(B, T, D)``."""
        x = self.hidden_states(ids, keep=keep, token_types=token_types, cache=cache)
        return self.lm_head(x) if self.lm_head is not None else x

    def new_cache(self, batch: int, capacity: int | None = None) -> list[KVCache]:
        """An empty KV cache per block, for ``capacity`` positions (the context by default)."""
        size = self.config.context if capacity is None else capacity
        return [cast(Block, block).attention.new_cache(batch, size) for block in self.blocks]
