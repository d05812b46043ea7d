"""What every loader produces (:class:`Parts`), and the one place that turns it into a :class:`Transformer`.

A loader reads a file format and renames its tensors to qkv's module names; :func:`build` checks that the
tensors are exactly the ones the config asks for, with the right shapes, before anything is loaded, so a
mismatch is one clear error and never a half-loaded model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from qkv.model.config import TransformerConfig
from qkv.model.transformer import Transformer
from qkv.pretrained.registry import PretrainedError
from qkv.pretrained.tokenizer import PretrainedTokenizer
from qkv.shapes import Tensor

__all__ = ["Parts", "build", "check_vocabulary"]


@dataclass
class Parts:
    """A model as read from its files: config, tensors under qkv's names, tokenizer and chat conventions."""

    config: TransformerConfig
    tensors: dict[str, Tensor]
    tokenizer: PretrainedTokenizer | None
    source: Path
    architecture: str  # as the files name it: "BertModel", "GPT2LMHeadModel", "llama (GGUF Q4_1)" …
    chat_template: str | None = None
    special_tokens: dict[str, str] = field(default_factory=dict)  # "bos_token", "eos_token" … → token text
    stop_ids: tuple[int, ...] = ()  # generation ends after any of these
    pad_id: int = 0
    max_embed_tokens: int | None = None  # sentence-transformers' max_seq_length, where the directory gives one


def check_vocabulary(tokenizer: PretrainedTokenizer, vocab_size: int, where: Path) -> None:
    """A tokenizer whose ids reach past the model's vocabulary belongs to another model."""
    if tokenizer.vocab_size > vocab_size:
        raise PretrainedError(
            f"the tokenizer in {where} has {tokenizer.vocab_size} tokens but the model's vocabulary holds "
            f"{vocab_size}: they belong to different models"
        )


def build(parts: Parts) -> Transformer:
    """The model of ``parts.config`` holding ``parts.tensors`` (float32, the tensors themselves: no copies)."""
    config = parts.config
    model = Transformer(config)
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    tied = config.lm_head and config.tie_embeddings
    if tied:
        expected.pop("lm_head.weight")  # it is the token embedding
    given = parts.tensors
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    where = f"{parts.source} ({parts.architecture})"
    if missing:
        raise PretrainedError(f"{where} lacks {len(missing)} tensors this config needs, e.g. {', '.join(missing[:3])}")
    if unexpected:
        raise PretrainedError(
            f"{where} has {len(unexpected)} tensors this config has no place for, e.g. {', '.join(unexpected[:3])}"
        )
    for name, shape in expected.items():
        if tuple(given[name].shape) != shape:
            raise PretrainedError(
                f"{where}: tensor {name} has shape {tuple(given[name].shape)}, the config needs {shape}"
            )
    state = {name: value.to(torch.float32).contiguous() for name, value in given.items()}
    model.load_state_dict(state, strict=False, assign=True)  # every key was checked above
    if tied and model.lm_head is not None:
        model.lm_head.weight = model.embedding.tokens.weight  # assign=True replaced the shared parameter
    return model.eval()
