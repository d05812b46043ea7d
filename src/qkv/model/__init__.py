"""The transformer built from the attention core, and its configuration.

The names load on first use, so that :mod:`qkv.model.config` (plain data, no PyTorch) imports alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv._lazy import lazy

_LAZY = {
    "FAMILIES": "qkv.model.config",
    "PRESETS": "qkv.model.config",
    "TransformerConfig": "qkv.model.config",
    "preset": "qkv.model.config",
    "MLP": "qkv.model.transformer",
    "Block": "qkv.model.transformer",
    "Embedding": "qkv.model.transformer",
    "Transformer": "qkv.model.transformer",
}

__all__ = ["FAMILIES", "MLP", "PRESETS", "Block", "Embedding", "Transformer", "TransformerConfig", "preset"]

if TYPE_CHECKING:
    from qkv.model.config import FAMILIES, PRESETS, TransformerConfig, preset
    from qkv.model.transformer import MLP, Block, Embedding, Transformer


__getattr__, __dir__ = lazy(__name__, _LAZY, __all__)
