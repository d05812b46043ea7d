"""The attention layer's configuration and the position schemes: plain data, importable without PyTorch.

:class:`AttentionConfig` is read by :class:`~qkv.attention.layer.SelfAttention`, and the model's
:class:`~qkv.model.config.TransformerConfig` builds one per block; keeping both free of PyTorch lets the command
line build ``qkv train --help`` from the config fields without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from qkv.errors import ConfigError, check_choice, check_positive, check_types

__all__ = ["POSITION_SCHEMES", "AttentionConfig", "PositionScheme"]

PositionScheme = Literal["none", "learned", "sinusoidal", "rope", "alibi"]
POSITION_SCHEMES: tuple[PositionScheme, ...] = ("none", "learned", "sinusoidal", "rope", "alibi")


@dataclass(frozen=True)
class AttentionConfig:
    """One self-attention layer.

    ``width`` is the model width D; ``heads`` the query heads H; ``kv_heads`` the key/value heads G
    (grouped-query; ``None`` means G = H); ``head_width`` K (``None`` means D / H). ``positions`` picks the
    scheme; only ``"rope"`` and ``"alibi"`` act inside the layer, ``"learned"`` and ``"sinusoidal"`` are
    added to the embedding by the model. ``context`` bounds the positions RoPE and ALiBi can encode.
    """

    width: int
    heads: int
    kv_heads: int | None = None
    head_width: int | None = None
    bias: bool = True
    causal: bool = True
    positions: PositionScheme = "none"
    context: int = 1024
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_types(self)
        for field in ("width", "heads", "context"):
            check_positive(name, field, getattr(self, field))
        if self.kv_heads is not None:
            check_positive(name, "kv_heads", self.kv_heads)
            if self.heads % self.kv_heads:
                raise ConfigError(
                    f"{name}.kv_heads={self.kv_heads} must divide heads={self.heads} "
                    "(each key/value head serves a whole group of query heads)"
                )
        if self.head_width is None:
            if self.width % self.heads:
                raise ConfigError(
                    f"{name}.heads={self.heads} does not divide width={self.width}; choose heads that divide "
                    "the width or set head_width"
                )
        else:
            check_positive(name, "head_width", self.head_width)
        check_choice(name, "positions", self.positions, POSITION_SCHEMES)
        if self.positions == "rope" and self.key_width % 2:
            raise ConfigError(f"{name}.head_width={self.key_width} must be even for RoPE")
        if not self.rope_theta > 0:  # NaN too
            raise ConfigError(f"{name}.rope_theta must be positive, got {self.rope_theta}")

    @property
    def key_width(self) -> int:
        """K, the width of one head's query, key and value."""
        return self.head_width if self.head_width is not None else self.width // self.heads

    @property
    def groups(self) -> int:
        """G, the number of key/value heads."""
        return self.kv_heads if self.kv_heads is not None else self.heads
