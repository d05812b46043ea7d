"""The learning-rate schedule: linear warmup, then cosine decay to a floor at ``TrainConfig.decay_end``."""

from __future__ import annotations

import math

from qkv.training.config import TrainConfig

__all__ = ["learning_rate"]


def learning_rate(step: int, config: TrainConfig) -> float:
    """The learning rate for optimizer step ``step`` (0-based); from ``config.decay_end`` on, the floor."""
    if step >= config.decay_end:  # only a run extended past its schedule gets here (TrainConfig.schedule_steps)
        return config.min_learning_rate
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    decay_steps = max(1, config.decay_end - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 → 0
    return config.min_learning_rate + cosine * (config.learning_rate - config.min_learning_rate)
