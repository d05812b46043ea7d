"""What every loader produces (:class:`Parts`), and the one place that turns it into a :class:`Transformer`.

A loader reads a file format and renames its tensors to qkv's module names; :func:`build` checks that the
tensors are exactly the ones the config asks for, with the right shapes, before anything is loaded, so a
mismatch is one clear error and never a half-loaded model.

The model is built without random initialisation (which for SmolLM2's 135M weights took 1.7 s): its
parameters are left as ``torch.empty`` allocates them — memory never touched, so never resident — and then
replaced by the loaded tensors themselves. (PyTorch's ``meta`` device would do the same, but building on it
imports ``torch._dynamo`` and sympy: 48 MB and a second.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qkv.data.registry import PretrainedError
from qkv.model.config import TransformerConfig
from qkv.model.transformer import Transformer
from qkv.pretrained.lowbit import BF16Embedding, BF16Linear, Int4Blocks, Int4Linear, WeightFormat
from qkv.shapes import Tensor
from qkv.text.tokenizers import Tokenizer

__all__ = ["Parts", "build", "check_vocabulary"]


@dataclass
class Parts:
    """A model as read from its files: config, tensors under qkv's names, tokenizer and chat conventions."""

    config: TransformerConfig
    tensors: dict[str, Tensor]
    tokenizer: Tokenizer | None  # a PretrainedTokenizer, or a run's own char or BPE tokenizer
    source: Path
    architecture: str  # as the files name it: "BertModel", "GPT2LMHeadModel", "llama (GGUF Q4_1)" …
    chat_template: str | None = None
    special_tokens: dict[str, str] = field(default_factory=dict)  # "bos_token", "eos_token" … → token text
    stop_ids: tuple[int, ...] = ()  # generation ends after any of these
    pad_id: int = 0
    max_embed_tokens: int | None = None  # sentence-transformers' max_seq_length, where the directory gives one
    int4: dict[str, Int4Blocks] = field(default_factory=dict)  # 4-bit blocks of some matrices (GGUF, int4 only)


def check_vocabulary(tokenizer: Tokenizer, vocab_size: int, where: Path) -> None:
    """A tokenizer whose ids reach past the model's vocabulary belongs to another model."""
    if tokenizer.vocab_size > vocab_size:
        raise PretrainedError(
            f"the tokenizer in {where} has {tokenizer.vocab_size} tokens but the model's vocabulary holds "
            f"{vocab_size}: they belong to different models"
        )


_INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
)


@contextlib.contextmanager
def _uninitialised() -> Iterator[None]:
    """Inside, ``torch.nn.init`` leaves tensors as they are (as ``transformers``' ``no_init_weights`` does): the
    modules built here get their values from a file right after. Not thread-safe: building a model in another
    thread meanwhile would skip its initialisation too."""

    def keep(tensor: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return tensor

    saved = {name: getattr(nn.init, name) for name in _INITIALISERS}
    try:
        for name in _INITIALISERS:
            setattr(nn.init, name, keep)
        yield
    finally:
        for name, initialiser in saved.items():
            setattr(nn.init, name, initialiser)


def build(parts: Parts, precision: WeightFormat = "float32") -> Transformer:
    """The model of ``parts.config`` holding ``parts.tensors`` (the tensors themselves: no copies where their
    dtype is already the one ``precision`` asks for; see :mod:`qkv.pretrained.lowbit`)."""
    config = parts.config
    with _uninitialised():
        model = Transformer(config)  # every parameter is replaced below
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
    lowered = _lower(model, given, parts.int4, precision) if precision != "float32" else set()
    state = {name: value.to(torch.float32).contiguous() for name, value in given.items() if name not in lowered}
    model.load_state_dict(state, strict=False, assign=True)  # every key was checked above
    if tied and model.lm_head is not None:
        if precision == "float32":
            model.lm_head.weight = model.embedding.tokens.weight  # assign=True replaced the shared parameter
        else:
            model.lm_head = BF16Linear(model.embedding.tokens.weight)  # the embedding's bfloat16 table
    return model.eval()


def _lower(
    model: Transformer, tensors: dict[str, Tensor], blocks: dict[str, Int4Blocks], precision: WeightFormat
) -> set[str]:
    """Put bfloat16 linear layers (4-bit ones where ``blocks`` has the weight and ``precision`` is ``int4``) and a
    bfloat16 token embedding in place; return the names of the tensors they took."""
    taken = set()
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            weight = tensors.get(f"{name}.weight")
            if weight is None:
                continue  # a tied output layer: it gets the embedding's table
            if isinstance(child, nn.Linear):
                bias = tensors.get(f"{name}.bias")
                found = blocks.get(f"{name}.weight") if precision == "int4" else None
                low = BF16Linear(weight.to(torch.bfloat16), bias) if found is None else Int4Linear(found, bias)
                setattr(parent, child_name, low)
                taken.update({f"{name}.weight", f"{name}.bias"})
            elif name == "embedding.tokens":
                setattr(parent, child_name, BF16Embedding(weight.to(torch.bfloat16)))
                taken.add(f"{name}.weight")
    return taken
