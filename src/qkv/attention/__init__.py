"""The attention core: one function (:func:`attend`), one layer (:class:`SelfAttention`), masks, positions,
a KV cache, and the switch between the fused and the exact path (:func:`use`, :func:`implementation`).

The names load on first use, so that :mod:`qkv.attention.config` (plain data, no PyTorch) imports alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv._lazy import lazy

_LAZY = {
    "IMPLEMENTATIONS": "qkv.attention.kernels",
    "Implementation": "qkv.attention.kernels",
    "attend": "qkv.attention.kernels",
    "current_implementation": "qkv.attention.kernels",
    "exact_attention": "qkv.attention.kernels",
    "fused_attention": "qkv.attention.kernels",
    "implementation": "qkv.attention.kernels",
    "use": "qkv.attention.kernels",
    "KVCache": "qkv.attention.kv_cache",
    "AttentionConfig": "qkv.attention.config",
    "POSITION_SCHEMES": "qkv.attention.config",
    "PositionScheme": "qkv.attention.config",
    "SelfAttention": "qkv.attention.layer",
}

__all__ = [
    "IMPLEMENTATIONS",
    "POSITION_SCHEMES",
    "AttentionConfig",
    "Implementation",
    "KVCache",
    "PositionScheme",
    "SelfAttention",
    "attend",
    "current_implementation",
    "exact_attention",
    "fused_attention",
    "implementation",
    "use",
]

if TYPE_CHECKING:
    from qkv.attention.config import POSITION_SCHEMES, AttentionConfig, PositionScheme
    from qkv.attention.kernels import (
        IMPLEMENTATIONS,
        Implementation,
        attend,
        current_implementation,
        exact_attention,
        fused_attention,
        implementation,
        use,
    )
    from qkv.attention.kv_cache import KVCache
    from qkv.attention.layer import SelfAttention


__getattr__, __dir__ = lazy(__name__, _LAZY, __all__)
