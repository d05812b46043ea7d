"""The transformer built from the attention core, and its configuration."""

from qkv.model.config import FAMILIES, PRESETS, TransformerConfig, preset
from qkv.model.transformer import MLP, Block, Embedding, Transformer

__all__ = ["FAMILIES", "MLP", "PRESETS", "Block", "Embedding", "Transformer", "TransformerConfig", "preset"]
