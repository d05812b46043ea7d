"""A run directory written by ``qkv train`` (or its ``checkpoint/``), read as :class:`Parts` like any model.

The checkpoint format belongs to training (:mod:`qkv.training.checkpoint`, which writes it and reads it back);
this module only hands what :func:`~qkv.training.checkpoint.read_model` reads to the one place that builds
models (:func:`~qkv.pretrained.assemble.build`), so a run loads exactly as a pretrained model does, in every
precision but ``int4`` (which needs a GGUF's 4-bit blocks).
"""

from __future__ import annotations

from pathlib import Path

from qkv.pretrained.assemble import Parts, check_vocabulary
from qkv.training.checkpoint import read_model

__all__ = ["read_run"]


def read_run(path: Path) -> Parts:
    """The model a run or checkpoint directory holds, with its own char or BPE tokenizer (no chat template)."""
    saved = read_model(path)
    check_vocabulary(saved.tokenizer, saved.model_config.vocab_size, saved.path / "tokenizer.json")
    return Parts(
        config=saved.model_config,
        tensors=saved.tensors,
        tokenizer=saved.tokenizer,
        source=saved.path,
        architecture=f"qkv run, step {saved.progress.step}",
    )
