"""TransformerConfig: one frozen, validated dataclass whose fields alone express BERT, GPT-2 and Llama.

No component asks "which family is this?"; each reads the fields it needs (norm placement, norm kind,
activation, positions, causal, biases, tied embeddings …). Presets give named starting points; change any
field with ``preset("tiny", width=96)`` or :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from qkv.attention.config import POSITION_SCHEMES, AttentionConfig, PositionScheme
from qkv.errors import ConfigData, ConfigError, check_choice, check_positive, check_types

__all__ = ["FAMILIES", "PRESETS", "Activation", "NormKind", "Placement", "TransformerConfig", "preset"]

NormKind = Literal["layernorm", "rmsnorm"]
Placement = Literal["pre", "post"]
Activation = Literal["gelu", "gelu_tanh", "relu", "swiglu"]


@dataclass(frozen=True)
class TransformerConfig(ConfigData):
    """A stack of ``layers`` blocks (attention + position-wise MLP) over a vocabulary of ``vocab_size``.

    Widths: ``width`` D, ``heads`` H, ``kv_heads`` G (None: G = H), ``head_width`` K (None: D / H),
    ``mlp_width`` (None: 4·D). ``context`` is the longest sequence the model accepts (and its positions encode).
    """

    vocab_size: int = 256
    context: int = 256
    """the longest sequence the model reads, in tokens; its positions are encoded up to it"""
    width: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int | None = None
    head_width: int | None = None
    mlp_width: int | None = None
    activation: Activation = "gelu"
    norm: NormKind = "layernorm"
    norm_eps: float = 1e-5
    norm_placement: Placement = "pre"  # pre: x + f(norm(x)) (GPT-2, Llama); post: norm(x + f(x)) (BERT)
    positions: PositionScheme = "learned"
    rope_theta: float = 10000.0
    causal: bool = True
    attention_bias: bool = True
    mlp_bias: bool = True
    norm_bias: bool = True  # LayerNorm's shift β (RMSNorm has none)
    token_types: int = 0  # BERT's segment embeddings (2); 0 for none
    embedding_norm: bool = False  # BERT normalises the summed embeddings
    final_norm: bool = True  # pre-norm stacks normalise once more before the output
    lm_head: bool = True  # project to vocabulary logits (False: return hidden states, an encoder)
    tie_embeddings: bool = True  # the output projection reuses the token embedding matrix
    dropout: float = 0.0  # on embeddings and on each residual branch, in training only

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_types(self)
        for field in ("vocab_size", "context", "width", "layers", "heads"):
            check_positive(name, field, getattr(self, field))
        if self.mlp_width is not None:
            check_positive(name, "mlp_width", self.mlp_width)
        if self.token_types < 0:
            raise ConfigError(f"{name}.token_types must be 0 (none) or more, got {self.token_types}")
        check_choice(name, "activation", self.activation, get_args(Activation))
        check_choice(name, "norm", self.norm, get_args(NormKind))
        check_choice(name, "norm_placement", self.norm_placement, get_args(Placement))
        check_choice(name, "positions", self.positions, POSITION_SCHEMES)
        if not self.norm_eps > 0:
            raise ConfigError(f"{name}.norm_eps must be positive, got {self.norm_eps}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{name}.dropout must be in [0, 1), got {self.dropout}")
        if self.tie_embeddings and not self.lm_head:
            raise ConfigError(f"{name}.tie_embeddings=True needs lm_head=True (there is no output to tie)")
        try:
            self.attention  # noqa: B018 - validates the attention fields with their own messages
        except ConfigError as error:
            raise ConfigError(str(error).replace("AttentionConfig.", f"{name}.")) from None

    @property
    def attention(self) -> AttentionConfig:
        """The config of each block's self-attention layer."""
        return AttentionConfig(
            width=self.width,
            heads=self.heads,
            kv_heads=self.kv_heads,
            head_width=self.head_width,
            bias=self.attention_bias,
            causal=self.causal,
            positions=self.positions,
            context=self.context,
            rope_theta=self.rope_theta,
        )

    @property
    def hidden_width(self) -> int:
        """The MLP's inner width."""
        return self.mlp_width if self.mlp_width is not None else 4 * self.width

    # -- what a model of this config holds, known before it is built --------------------------------------

    def _embedding_shapes(self) -> dict[str, tuple[int, ...]]:
        """The state-dict tensors before the blocks: the embeddings and their norm."""
        D = self.width
        shapes: dict[str, tuple[int, ...]] = {"embedding.tokens.weight": (self.vocab_size, D)}
        if self.positions == "learned":
            shapes["embedding.positions.table.weight"] = (self.context, D)
        if self.token_types:
            shapes["embedding.token_types.weight"] = (self.token_types, D)
        if self.embedding_norm:
            shapes.update(self._norm_shapes("embedding.norm"))
        return shapes

    def _head_shapes(self) -> dict[str, tuple[int, ...]]:
        """The state-dict tensors after the blocks: the final norm and the LM head (tied or not)."""
        shapes = self._norm_shapes("final_norm") if self.final_norm else {}
        if self.lm_head:
            shapes["lm_head.weight"] = (self.vocab_size, self.width)
        return shapes

    def _norm_shapes(self, prefix: str) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {f"{prefix}.weight": (self.width,)}
        if self.norm == "layernorm" and self.norm_bias:
            shapes[f"{prefix}.bias"] = (self.width,)
        return shapes

    def _block_shapes(self, index: int) -> dict[str, tuple[int, ...]]:
        """The state-dict tensors of block ``index``: attention, MLP and their two norms."""
        attention, D, F = self.attention, self.width, self.hidden_width
        H, G, K = attention.heads, attention.groups, attention.key_width
        layers = {
            "attention.to_q": (H * K, D, self.attention_bias),
            "attention.to_k": (G * K, D, self.attention_bias),
            "attention.to_v": (G * K, D, self.attention_bias),
            "attention.to_out": (D, H * K, self.attention_bias),
            "mlp.to_hidden": (F, D, self.mlp_bias),
            **({"mlp.to_gate": (F, D, self.mlp_bias)} if self.activation == "swiglu" else {}),
            "mlp.to_out": (D, F, self.mlp_bias),
        }
        shapes: dict[str, tuple[int, ...]] = {}
        for name, (outputs, inputs, bias) in layers.items():
            shapes[f"blocks.{index}.{name}.weight"] = (outputs, inputs)
            if bias:
                shapes[f"blocks.{index}.{name}.bias"] = (outputs,)
        shapes.update(self._norm_shapes(f"blocks.{index}.attention_norm"))
        shapes.update(self._norm_shapes(f"blocks.{index}.mlp_norm"))
        return shapes

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of ``Transformer(self).state_dict()`` by name, with its shape (a tied LM head included):
        what a weights file for this config must hold, known without building the model."""
        shapes = self._embedding_shapes()
        for index in range(self.layers):
            shapes.update(self._block_shapes(index))
        return {**shapes, **self._head_shapes()}

    def parameter_count(self) -> int:
        """How many numbers the model's parameters hold (a tied LM head counted once), by arithmetic alone, so
        that a config asking for 10⁹ layers costs nothing to measure."""
        outside = {**self._embedding_shapes(), **self._head_shapes()}
        if self.lm_head and self.tie_embeddings:
            outside.pop("lm_head.weight")  # it is the token embedding
        per_block = sum(math.prod(shape) for shape in self._block_shapes(0).values())
        return sum(math.prod(shape) for shape in outside.values()) + self.layers * per_block

    def estimated_bytes(self, bytes_per_parameter: int = 4) -> int:
        """The memory a model of this config takes to build: its parameters at ``bytes_per_parameter`` (float32:
        4), the position tables it computes (in float64 first), and each block's modules as Python objects."""
        attention = self.attention
        table_width = {"sinusoidal": self.width, "rope": attention.key_width}.get(self.positions, 0)
        tables = _TABLE_BYTES_PER_VALUE * self.context * table_width
        return bytes_per_parameter * self.parameter_count() + tables + _OBJECT_BYTES_PER_LAYER * self.layers


# The peak bytes per value of a computed position table (float64 angles, their sine and cosine, float32 copies).
_TABLE_BYTES_PER_VALUE = 24
# A block's modules, parameters and their bookkeeping as Python objects: about 42 kB for a narrow block, rounded up.
_OBJECT_BYTES_PER_LAYER = 48_000


# Family templates: the conventions of each family. Sizes come from the presets or the loaded model.
FAMILIES: dict[str, TransformerConfig] = {
    # BERT: post-norm LayerNorm, exact GELU, learned positions + token types, bidirectional, an encoder.
    "bert": TransformerConfig(
        norm_placement="post",
        norm_eps=1e-12,
        activation="gelu",
        positions="learned",
        causal=False,
        token_types=2,
        embedding_norm=True,
        final_norm=False,
        lm_head=False,
        tie_embeddings=False,
    ),
    # GPT-2: pre-norm LayerNorm, tanh-GELU, learned positions, causal, tied input/output embeddings.
    "gpt2": TransformerConfig(
        norm_placement="pre",
        activation="gelu_tanh",
        positions="learned",
        causal=True,
        tie_embeddings=True,
    ),
    # Llama: pre-norm RMSNorm, SwiGLU, RoPE, causal, no biases, untied output; grouped-query once kv_heads is set.
    "llama": TransformerConfig(
        norm="rmsnorm",
        norm_eps=1e-5,
        activation="swiglu",
        positions="rope",
        causal=True,
        attention_bias=False,
        mlp_bias=False,
        norm_bias=False,
        tie_embeddings=False,
    ),
}

# Size presets for models trained with qkv (GPT-2 conventions). vocab_size is set from the tokenizer.
PRESETS: dict[str, TransformerConfig] = {
    "tiny": dataclasses.replace(FAMILIES["gpt2"], context=64, width=64, layers=2, heads=4),
    "small": dataclasses.replace(FAMILIES["gpt2"], context=64, width=128, layers=4, heads=4),
    "medium": dataclasses.replace(FAMILIES["gpt2"], context=256, width=384, layers=6, heads=6),
}


def preset(name: str, **overrides: Any) -> TransformerConfig:
    """A preset or family by name, with any fields overridden: ``preset("tiny", vocab_size=65)``."""
    table = {**PRESETS, **FAMILIES}
    if name not in table:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(table)}")
    known = {f.name for f in dataclasses.fields(TransformerConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"TransformerConfig has no field {', '.join(unknown)}")
    return dataclasses.replace(table[name], **overrides)
