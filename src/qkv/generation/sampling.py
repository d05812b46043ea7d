"""Choosing the next token from logits: temperature, top-k, top-p (nucleus), or greedy."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qkv.errors import ConfigError, check_positive
from qkv.shapes import Tensor

__all__ = ["GREEDY", "SamplingConfig", "sample_next"]


@dataclass(frozen=True)
class SamplingConfig:
    """``temperature=0`` is greedy; ``top_k``/``top_p`` keep only the likeliest tokens before sampling."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not self.temperature >= 0:  # NaN too
            raise ConfigError(f"{name}.temperature must be 0 (greedy) or more, got {self.temperature}")
        if self.top_k is not None:
            check_positive(name, "top_k", self.top_k)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"{name}.top_p must be in (0, 1], got {self.top_p}")


#: Always the most likely token: what tests, benchmarks and chat answers use.
GREEDY = SamplingConfig(temperature=0.0)


def sample_next(logits: Tensor, config: SamplingConfig, generator: torch.Generator | None = None) -> Tensor:
    """Next token ids ``(B,)`` from the last position's logits ``(B, V)``."""
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / config.temperature
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
