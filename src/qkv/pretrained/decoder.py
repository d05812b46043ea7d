"""The fast decoder for pretrained models: :class:`qkv.generation.fast_decoder.FastDecoder`, under the name it
had when it served Llama-family models only (it now serves every pre-norm causal decoder the Transformer
computes: GPT-2's conventions as well as Llama's). :func:`supports` says which models.

:meth:`PretrainedModel.stream` generates through :func:`qkv.generation.generate`, which uses it at batch 1; a
model with a capture hook set (inspection) generates through the Transformer.
"""

from __future__ import annotations

from qkv.generation.fast_decoder import FastDecoder, supports

LlamaDecoder = FastDecoder

__all__ = ["FastDecoder", "LlamaDecoder", "supports"]
