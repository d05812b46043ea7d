"""Training your own LLM: config, schedule, batches, the loop, and safe checkpoints."""

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
