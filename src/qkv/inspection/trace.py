"""qkv.trace: run a text through a model once and keep who attends to whom, as an AttentionTrace.

    import qkv
    result = qkv.trace(qkv.load("minilm"), "Evan's dog Riley is so hyperactive, she never stops moving")
    result.weights.shape            # (L, H, T, S) = (6, 12, 16, 16)

The trace itself is plain data (:class:`qkv.data.trace.AttentionTrace`, with its JSON and the word helpers);
this module only captures one, at each layer's capture point (``SelfAttention.weights_hook``): a captured layer
takes the exact path and hands over the weights it computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.inspection.capture import attention_hooks, layer_numbers
from qkv.model.transformer import Transformer
from qkv.shapes import Tensor
from qkv.text.tokenizers import Tokenizer

__all__ = ["MAX_TRACE_BYTES", "LoadedModel", "trace"]

# The weights a trace may hold: L·H·T² float32 numbers. At the cap, taking and saving a trace needs about this
# much beside the model (the JSON is streamed), and reading the JSON back about 2.7 times it (docs/inspection.md).
MAX_TRACE_BYTES = 2 * 1024**3


class LoadedModel(Protocol):
    """A model with its tokenizer and a name: :class:`qkv.Model`, the handle :func:`qkv.load` returns."""

    @property
    def model(self) -> Transformer: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def name(self) -> str: ...


# -- capturing --------------------------------------------------------------------------------------------


@torch.no_grad()
def trace(
    model: LoadedModel,
    text: str,
    *,
    layers: Sequence[int] | None = None,
    name: str | None = None,
) -> AttentionTrace:
    """Run ``text`` through a model once and capture the weights of ``layers`` (all by default).

    ``model`` is the handle :func:`qkv.load` returns for every model (``qkv.load("minilm")``, a run
    ``qkv.load("runs/latest")``), or one built in memory (``qkv.Model(transformer, tokenizer, name="mine")``);
    ``name`` overrides the name the trace records. The model's output is not changed: capturing only records
    the weights.

    The text may be as long as the model's context (MiniLM: 512 tokens with ``[CLS]`` and ``[SEP]``), as long
    as the weights, ``4·L·H·T²`` bytes, stay within ``MAX_TRACE_BYTES`` (2 GiB: SmolLM2's 30 layers × 9 heads
    hold 1,410 tokens, one of its layers 7,723). The trace holds them once; :meth:`AttentionTrace.save` streams
    them to JSON without a second copy.
    """
    network, tokenizer = model.model, model.tokenizer
    label = name if name is not None else model.name
    if not text.strip():
        raise InputError("the text is empty; give at least one word")
    ids, tokens, special = _tokenize(tokenizer, text)
    context = network.config.context
    if len(ids) > context:
        raise InputError(
            f"the text is {len(ids)} tokens long; {label or 'this model'} reads at most {context} tokens"
            f"{' (its special tokens included)' if any(special) else ''}: shorten it"
        )
    chosen = sorted(set(layer_numbers(network, layers)))
    count, heads = len(chosen), network.config.heads
    size = 4 * count * heads * len(ids) ** 2
    if size > MAX_TRACE_BYTES:
        longest = int((MAX_TRACE_BYTES / (4 * count * heads)) ** 0.5)
        raise InputError(
            f"a trace of {len(ids)} tokens through {count} layer{'s' * (count > 1)} × {heads} heads would hold "
            f"{size / 1024**3:.1f} GiB of weights; trace at most {longest} tokens, or fewer layers"
        )
    # Each layer's weights go straight into their slot: the trace never holds them twice, nor the logits.
    weights = torch.empty(len(chosen), heads, len(ids), len(ids))  # (L, H, T, S), float32 on the CPU
    hooks = {layer: _copy_into(weights[slot]) for slot, layer in enumerate(chosen)}
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        with attention_hooks(network, hooks):
            network.hidden_states(torch.tensor([ids], dtype=torch.long, device=device))
    finally:
        network.train(was_training)
    return AttentionTrace(weights, tuple(tokens), tuple(chosen), text, label, tuple(special))


def _copy_into(slot: Tensor) -> Callable[[Tensor], None]:
    """A capture hook that copies one sequence's weights ``(1, H, T, S)`` into ``slot (H, T, S)``."""

    def copy(weights: Tensor) -> None:
        slot.copy_(weights[0])  # converted to float32, moved to the CPU

    return copy


def _tokenize(tokenizer: Tokenizer, text: str) -> tuple[list[int], list[str], list[bool]]:
    """Ids, the text each covers (special tokens as themselves), and which are special.

    Pretrained tokenizers give the stretch of text under each token (``encode_with_pieces``) and know their
    special tokens (``is_special``); qkv's own tokenizers have neither, and every piece is its own text.
    """
    with_pieces = getattr(tokenizer, "encode_with_pieces", None)
    if callable(with_pieces):
        ids, pieces = with_pieces(text)
    else:
        ids = tokenizer.encode(text)
        pieces = tokenizer.pieces(ids)
    is_special = getattr(tokenizer, "is_special", None)
    special = [bool(is_special(i)) for i in ids] if callable(is_special) else [False] * len(ids)
    return [int(i) for i in ids], [str(piece) for piece in pieces], special
