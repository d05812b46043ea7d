"""Generating text: sampling, prefill, one-token decode steps over the KV cache."""

from qkv.generation.generate import DecodeStep, decode_one_token, generate, generate_uncached, prefill
from qkv.generation.sampling import GREEDY, SamplingConfig, sample_next

__all__ = [
    "GREEDY",
    "DecodeStep",
    "SamplingConfig",
    "decode_one_token",
    "generate",
    "generate_uncached",
    "prefill",
    "sample_next",
]
