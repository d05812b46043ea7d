"""TrainConfig: how to train (the model's shape lives in :class:`~qkv.model.TransformerConfig`).

Plain data: this module imports no PyTorch, so that ``qkv train --help`` is built from these fields (their
types, defaults and the docstring under each) without loading it. The docstring under a field is its help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from qkv.errors import ConfigData, ConfigError, check_choice, check_positive, check_seed, check_types

__all__ = ["COMPUTE_PRECISIONS", "ComputePrecision", "TrainConfig"]

ComputePrecision = Literal["auto", "float32", "bfloat16"]
"""How the forward pass multiplies while training (:mod:`qkv.training.precision`); how a pretrained model's
weights are stored is another thing: :data:`qkv.pretrained.lowbit.WeightFormat`."""
COMPUTE_PRECISIONS: tuple[str, ...] = get_args(ComputePrecision)


@dataclass(frozen=True)
class TrainConfig(ConfigData):
    """AdamW with decoupled weight decay, linear warmup then cosine decay, gradient clipping.

    Training stops after ``steps`` optimizer steps or ``time_limit`` seconds of wall time, whichever comes
    first (``time_limit=None``: steps only). Validation loss is estimated every ``eval_interval`` steps on
    ``eval_batches`` batches, and a checkpoint is written then. ``precision`` is how the forward pass
    multiplies (:mod:`qkv.training.precision`): ``"auto"`` is bfloat16 mixed precision where the hardware has
    bfloat16 matrix units and float32 elsewhere; a run records the concrete choice. ``compile`` runs the
    training step's model through :func:`torch.compile` (inductor, with its on-disk cache): the first step
    pays for compiling, every later one is faster; ``None`` compiles runs long enough to pay for it
    (:mod:`qkv.training.compiling`), and a run records the concrete choice. ``watch`` is a text whose
    attention is stored at the start and at every validation (:mod:`qkv.training.watch`; ``None``: nothing is
    watched); it must fit the model's context and use only characters its tokenizer knows, which
    :func:`~qkv.training.train` checks before the first step.
    """

    steps: int = 2000
    """total optimizer steps, counting those before a resume"""
    time_limit: float | None = None
    """stop after this many seconds of wall time (None: only steps stop the run)"""
    batch_size: int = 12
    """sequences per optimizer step; under torchrun, the global batch"""
    learning_rate: float = 1e-3
    """peak learning rate, reached after warmup"""
    min_learning_rate: float = 1e-4
    """the floor the cosine decay ends at"""
    warmup_steps: int = 100
    """steps of linear warmup from 0 to the peak learning rate"""
    weight_decay: float = 0.1
    """AdamW's decoupled weight decay, on matrices only"""
    beta1: float = 0.9
    """AdamW's first-moment decay"""
    beta2: float = 0.99
    """AdamW's second-moment decay"""
    grad_clip: float = 1.0
    """largest gradient norm; larger gradients are scaled down to it"""
    eval_interval: int = 250
    """estimate the validation loss and write a checkpoint every N steps"""
    eval_batches: int = 20
    """batches each validation estimate averages"""
    seed: int = 1337
    """random seed: the same seed trains the same model"""
    precision: ComputePrecision = "auto"
    """forward-pass arithmetic: bfloat16 mixed precision (weights and optimizer stay float32) or float32; auto
    picks bfloat16 where the processor multiplies it natively (AMX, AVX-512 BF16, CUDA)"""
    compile: bool | None = None
    """run the model through torch.compile (on a CPU it needs a C++ compiler): faster steps after a first step
    that compiles (tens of seconds, a few once its on-disk cache holds the graphs) and about 85 MB more memory;
    None: compile runs of 5,000 steps or more where it can, shorter ones eagerly"""
    schedule_steps: int | None = None
    """the step at which the cosine decay reaches the floor (None: at steps); a resume that changes steps keeps
    the run's, so the steps already planned follow the same schedule and any beyond it train at the floor"""
    watch: str | None = None
    """store this text's attention (every head) at the start and at each validation, beside the checkpoint, for
    qkv serve's Training view"""

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_types(self)
        check_choice(name, "precision", self.precision, COMPUTE_PRECISIONS)
        for field in ("steps", "batch_size", "eval_interval", "eval_batches"):
            check_positive(name, field, getattr(self, field))
        if self.schedule_steps is not None:
            check_positive(name, "schedule_steps", self.schedule_steps)
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
        if self.watch is not None and not self.watch.strip():
            raise ConfigError(f"{name}.watch must be a text to watch (or None), got {self.watch!r}")
        check_seed(f"{name}.seed", self.seed)
        if not self.grad_clip > 0:
            raise ConfigError(f"{name}.grad_clip must be positive, got {self.grad_clip}")

    @property
    def decay_end(self) -> int:
        """The step at which the learning rate reaches ``min_learning_rate``: ``schedule_steps``, else ``steps``."""
        return self.schedule_steps if self.schedule_steps is not None else self.steps
