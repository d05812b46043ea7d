"""The transformer built from the attention core, and its configuration.

The names load on first use, so that :mod:`qkv.model.config` (plain data, no PyTorch) imports alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
