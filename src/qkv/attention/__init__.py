"""The attention core: one function (:func:`attend`), one layer (:class:`SelfAttention`), masks, positions,
and a KV cache."""

from qkv.attention.kernels import attend, exact_attention, fused_attention
from qkv.attention.kv_cache import KVCache
from qkv.attention.layer import AttentionConfig, SelfAttention
from qkv.attention.positions import POSITION_SCHEMES, PositionScheme

__all__ = [
    "POSITION_SCHEMES",
    "AttentionConfig",
    "KVCache",
    "PositionScheme",
    "SelfAttention",
    "attend",
    "exact_attention",
    "fused_attention",
]
