"""A trained run as the exporters need it: its config, its weights under qkv's names, its tokenizer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from qkv.model.config import TransformerConfig
from qkv.model.transformer import Transformer
from qkv.shapes import Tensor
from qkv.text.tokenizers import Tokenizer, tokenizer_from_json
from qkv.training.checkpoint import load_checkpoint, load_weights

__all__ = ["Run", "read_run"]


@dataclass(frozen=True)
class Run:
    """A run's latest checkpoint, read: ``tensors`` is the model's full state (float32, CPU) under qkv's module
    names, the tied output layer included as ``lm_head.weight``."""

    path: Path
    config: TransformerConfig
    tensors: dict[str, Tensor]
    tokenizer: Tokenizer
    position_table: Tensor | None  # (context, D): what the embedding adds per position (learned or fixed); or None

    @property
    def name(self) -> str:
        """The run directory's name (a checkpoint directory is named after the run that holds it)."""
        return self.path.parent.name if self.path.name == "checkpoint" else self.path.name


def read_run(path: str | os.PathLike[str]) -> Run:
    """The run (or checkpoint) directory ``path``, checked as ``qkv generate`` checks it: a directory that is not
    a complete qkv checkpoint is one :class:`~qkv.training.checkpoint.CheckpointError`."""
    checkpoint = load_checkpoint(path)
    tokenizer = tokenizer_from_json(checkpoint.tokenizer_json)
    model = Transformer(checkpoint.model_config)
    load_weights(model, checkpoint)
    with torch.no_grad():
        tensors = {name: value.detach().float().cpu().contiguous() for name, value in model.state_dict().items()}
        # Learned positions hold a trained table (an nn.Embedding), sinusoidal ones a fixed buffer outside the state.
        table = getattr(model.embedding.positions, "table", None)
        table = table.weight if isinstance(table, torch.nn.Embedding) else table
        table = table.detach().float().cpu().contiguous() if isinstance(table, torch.Tensor) else None
    return Run(
        path=checkpoint.path,
        config=checkpoint.model_config,
        tensors=tensors,
        tokenizer=tokenizer,
        position_table=table,
    )
