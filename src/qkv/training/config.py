"""TrainConfig: how to train (the model's shape lives in :class:`~qkv.model.TransformerConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from qkv.errors import ConfigData, ConfigError, check_choice, check_positive, check_seed, check_types
from qkv.training.precision import PRECISIONS, Precision

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig(ConfigData):
    """AdamW with decoupled weight decay, linear warmup then cosine decay, gradient clipping.

    Training stops after ``steps`` optimizer steps or ``time_limit`` seconds of wall time, whichever comes
    first (``time_limit=None``: steps only). Validation loss is estimated every ``eval_interval`` steps on
    ``eval_batches`` batches, and a checkpoint is written then. ``precision`` is how the forward pass
    multiplies (:mod:`qkv.training.precision`): ``"auto"`` is bfloat16 mixed precision where the hardware has
    bfloat16 matrix units and float32 elsewhere; a run records the concrete choice. ``compile`` runs the
    training step's model through :func:`torch.compile` (inductor, with its on-disk cache): the first step
    pays for compiling, every later one is faster.
    """

    steps: int = 2000
    time_limit: float | None = None
    batch_size: int = 12
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_batches: int = 20
    seed: int = 1337
    precision: Precision = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_types(self)
        check_choice(name, "precision", self.precision, PRECISIONS)
        for field in ("steps", "batch_size", "eval_interval", "eval_batches"):
            check_positive(name, field, getattr(self, field))
        if self.warmup_steps < 0:
            raise ConfigError(f"{name}.warmup_steps must be 0 or more, got {self.warmup_steps}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"{name}.time_limit must be a positive number of seconds, got {self.time_limit}")
        if not self.learning_rate > 0:
            raise ConfigError(f"{name}.learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.min_learning_rate <= self.learning_rate:
            raise ConfigError(
                f"{name}.min_learning_rate must be in [0, learning_rate={self.learning_rate}], "
                f"got {self.min_learning_rate}"
            )
        if self.weight_decay < 0:
            raise ConfigError(f"{name}.weight_decay must be 0 or more, got {self.weight_decay}")
        for field in ("beta1", "beta2"):
            if not 0 <= getattr(self, field) < 1:
                raise ConfigError(f"{name}.{field} must be in [0, 1), got {getattr(self, field)}")
        check_seed(f"{name}.seed", self.seed)
        if not self.grad_clip > 0:
            raise ConfigError(f"{name}.grad_clip must be positive, got {self.grad_clip}")
