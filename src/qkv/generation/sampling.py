"""Choosing the next token from logits: temperature, top-k, top-p (nucleus), or greedy."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from qkv.errors import ConfigError, check_positive
from qkv.shapes import Tensor

__all__ = ["GREEDY", "SamplingConfig", "sample_next"]


@dataclass(frozen=True)
class SamplingConfig:
    """``temperature=0`` is greedy (and so, in effect, is any temperature below 1e-38); ``top_k``/``top_p`` keep
    only the likeliest tokens before sampling."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not 0 <= self.temperature < math.inf:  # NaN too
            raise ConfigError(
                f"{name}.temperature must be 0 (greedy) or a finite positive number, got {self.temperature}"
            )
        if self.top_k is not None:
            check_positive(name, "top_k", self.top_k)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"{name}.top_p must be in (0, 1], got {self.top_p}")


#: Below this (float32's smallest normal number, about 1.2e-38) a temperature rounds to 0 or loses its digits in
#: float32, where 0 / 0 would be NaN; and every token but the likeliest already has a probability of 0 at it (the
#: logits of distinct tokens differ by far more than 1e-38 · 87), so sampling there is taking the likeliest token.
_SMALLEST_TEMPERATURE = float(torch.finfo(torch.float32).tiny)

#: Always the most likely token: what tests, benchmarks and chat answers use.
GREEDY = SamplingConfig(temperature=0.0)


def sample_next(logits: Tensor, config: SamplingConfig, generator: torch.Generator | None = None) -> Tensor:
    """Next token ids ``(B,)`` from the last position's logits ``(B, V)``."""
    if config.temperature < _SMALLEST_TEMPERATURE:  # 0, or a temperature float32 cannot hold: greedy
        return logits.argmax(dim=-1)
    logits = logits.float()
    # Shifted so that the largest logit is 0 before dividing: however small the temperature, the others fall to at
    # most -inf (a probability of 0) and never overflow to inf, whose softmax is inf - inf = NaN.
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / config.temperature  # (B, V)
    if config.top_k is not None and config.top_k < logits.shape[-1]:
        kth = torch.topk(logits, config.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p is not None and config.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token once the tokens before it already cover top_p; the first token always stays.
        drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= config.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)  # (B,)
