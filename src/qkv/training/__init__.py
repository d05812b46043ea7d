"""Training your own LLM: config, schedule, batches, the loop, and safe checkpoints.

The names load on first use, so that :mod:`qkv.training.config` (plain data, no PyTorch) imports alone: the
command line builds ``qkv train --help`` from it without loading PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv._lazy import lazy

_LAZY = {
    "Checkpoint": "qkv.training.checkpoint",
    "CheckpointError": "qkv.training.checkpoint",
    "Progress": "qkv.training.checkpoint",
    "find_checkpoint": "qkv.training.checkpoint",
    "load_checkpoint": "qkv.training.checkpoint",
    "load_weights": "qkv.training.checkpoint",
    "save_checkpoint": "qkv.training.checkpoint",
    "TrainConfig": "qkv.training.config",
    "CompileFailed": "qkv.training.loop",
    "TrainEvent": "qkv.training.loop",
    "TrainingDiverged": "qkv.training.loop",
    "TrainResult": "qkv.training.loop",
    "configure_optimizer": "qkv.training.loop",
    "estimate_loss": "qkv.training.loop",
    "train": "qkv.training.loop",
    "train_step": "qkv.training.loop",
}

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CompileFailed",
    "Progress",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "TrainingDiverged",
    "configure_optimizer",
    "estimate_loss",
    "find_checkpoint",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "train",
    "train_step",
]

if TYPE_CHECKING:
    from qkv.training.checkpoint import (
        Checkpoint,
        CheckpointError,
        Progress,
        find_checkpoint,
        load_checkpoint,
        load_weights,
        save_checkpoint,
    )
    from qkv.training.config import TrainConfig
    from qkv.training.loop import (
        CompileFailed,
        TrainEvent,
        TrainingDiverged,
        TrainResult,
        configure_optimizer,
        estimate_loss,
        train,
        train_step,
    )


__getattr__, __dir__ = lazy(__name__, _LAZY, __all__)
