"""The attention core: one function (:func:`attend`), one layer (:class:`SelfAttention`), masks, positions,
a KV cache, and the switch between the fused and the exact path (:func:`use`, :func:`implementation`)."""

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
from qkv.attention.layer import AttentionConfig, SelfAttention
from qkv.attention.positions import POSITION_SCHEMES, PositionScheme

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
