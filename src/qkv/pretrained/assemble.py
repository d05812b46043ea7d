"""What every loader produces (:class:`Parts`), and the one place that turns it into a :class:`Transformer`.

A loader reads a file format and renames its tensors to qkv's module names; :func:`build` checks that the
tensors are exactly the ones the config asks for, with the right shapes, before anything is loaded, so a
mismatch is one clear error and never a half-loaded model.

The model is built without random initialisation (``Transformer(config, initialise=False)``): its parameters
are left as ``torch.empty`` allocates them — memory never touched, so never resident — and then replaced by the
loaded tensors themselves. (PyTorch's ``meta`` device would do the same, but moving a model off it imports
sympy.) :func:`check_fits` lets a loader refuse a model too large for the free memory as soon as it has read the
config, before any tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from qkv.data.registry import PretrainedError
from qkv.model.config import TransformerConfig
from qkv.model.memory import check_memory
from qkv.model.transformer import Transformer
from qkv.pretrained.int8 import Int8Blocks, Int8Embedding, Int8Head
from qkv.pretrained.lowbit import BF16Embedding, BF16Linear, Int4Blocks, Int4Linear, WeightFormat
from qkv.shapes import Tensor
from qkv.text.tokenizers import Tokenizer

__all__ = ["Parts", "build", "check_fits", "check_vocabulary"]


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
    # The file's own blocks of some matrices (GGUF, int4 only): 4-bit layers, an 8-bit embedding and output layer.
    blocks: dict[str, Int4Blocks | Int8Blocks] = field(default_factory=dict)


def check_vocabulary(tokenizer: Tokenizer, vocab_size: int, where: Path) -> None:
    """A tokenizer whose ids reach past the model's vocabulary belongs to another model."""
    if tokenizer.vocab_size > vocab_size:
        raise PretrainedError(
            f"the tokenizer in {where} has {tokenizer.vocab_size} tokens but the model's vocabulary holds "
            f"{vocab_size}: they belong to different models"
        )


_BYTES_PER_PARAMETER: dict[str, int] = {"float32": 4, "bfloat16": 2, "int4": 2}  # int4: its embedding is bfloat16


def check_fits(config: TransformerConfig, precision: WeightFormat, where: Path) -> None:
    """Refuse, before a tensor is read, a model whose weights in ``precision`` cannot fit in the free memory (a
    damaged or hostile config asking for 100,000 layers, or a model too large for this machine)."""
    smaller = "load it as bfloat16 (or int4, from a GGUF) or on" if precision == "float32" else "load it on"
    check_memory(
        config.estimated_bytes(_BYTES_PER_PARAMETER[precision]),
        f"{where} describes a model of {config.parameter_count():,} parameters ({config.layers:,} layers of width "
        f"{config.width:,}), which as {precision}",
        f"{smaller} a machine with more memory",
    )


def build(parts: Parts, precision: WeightFormat = "float32") -> Transformer:
    """The model of ``parts.config`` holding ``parts.tensors`` (the tensors themselves: no copies where their
    dtype is already the one ``precision`` asks for; see :mod:`qkv.pretrained.lowbit`)."""
    config = parts.config
    expected = config.parameter_shapes()  # checked before the model is built: a mismatch allocates nothing
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
    model = Transformer(config, initialise=False)  # every parameter is replaced below
    lowered = _lower(model, given, parts.blocks, precision) if precision != "float32" else set()
    state = {name: value.to(torch.float32).contiguous() for name, value in given.items() if name not in lowered}
    model.load_state_dict(state, strict=False, assign=True)  # every key was checked above
    if tied and model.lm_head is not None:
        tokens = model.embedding.tokens
        if precision == "float32":
            model.lm_head.weight = tokens.weight  # assign=True replaced the shared parameter
        elif isinstance(tokens, Int8Embedding):
            model.lm_head = Int8Head(tokens.blocks)  # the embedding's 8-bit blocks
        else:
            model.lm_head = BF16Linear(tokens.weight)  # the embedding's bfloat16 table
    return model.eval()


def _lower(
    model: Transformer,
    tensors: dict[str, Tensor],
    blocks: dict[str, Int4Blocks | Int8Blocks],
    precision: WeightFormat,
) -> set[str]:
    """Put bfloat16 linear layers and a bfloat16 token embedding in place — or, where ``precision`` is ``int4`` and
    ``blocks`` has the weight, 4-bit layers and an 8-bit embedding and output layer; return the names of the
    tensors they took."""
    taken = set()
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            weight = tensors.get(f"{name}.weight")
            if weight is None:
                continue  # a tied output layer: it gets the embedding's table
            found = blocks.get(f"{name}.weight") if precision == "int4" else None
            if isinstance(child, nn.Linear):
                bias = tensors.get(f"{name}.bias")
                low: nn.Linear
                if isinstance(found, Int4Blocks):
                    low = Int4Linear(found, bias)
                elif isinstance(found, Int8Blocks) and bias is None:
                    low = Int8Head(found)
                else:
                    low = BF16Linear(weight.to(torch.bfloat16), bias)
                setattr(parent, child_name, low)
                taken.update({f"{name}.weight", f"{name}.bias"})
            elif name == "embedding.tokens":
                table: nn.Embedding
                if isinstance(found, Int8Blocks):
                    table = Int8Embedding(found)
                else:
                    table = BF16Embedding(weight.to(torch.bfloat16))
                setattr(parent, child_name, table)
                taken.add(f"{name}.weight")
    return taken
