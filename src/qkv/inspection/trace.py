"""AttentionTrace: who attends to whom, for one text through one model, as plain data.

A trace holds the captured weights ``(L, H, T, S)`` of one sequence and the token strings; renderers take a
trace, never a model. :func:`word_weights` folds token-level weights into word-level ones (a character-level
model sees "riley" as five tokens; a reader thinks of one word).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from qkv.errors import InputError
from qkv.inspection.capture import capture_attention
from qkv.model.transformer import Transformer
from qkv.shapes import Tensor
from qkv.text.tokenizers import Tokenizer

__all__ = ["AttentionTrace", "trace", "word_spans", "word_weights"]


@dataclass(frozen=True)
class AttentionTrace:
    """``weights (L, H, T, S)`` for the captured ``layers`` of one sequence of ``tokens``."""

    weights: Tensor
    tokens: tuple[str, ...]
    layers: tuple[int, ...]
    text: str
    model: str = ""


@torch.no_grad()
def trace(
    model: Transformer, tokenizer: Tokenizer, text: str, *, layers: Sequence[int] | None = None, model_name: str = ""
) -> AttentionTrace:
    """Run ``text`` through ``model`` once and capture the weights of ``layers`` (all by default)."""
    if not text:
        raise InputError("the text is empty; give at least one word")
    ids = tokenizer.encode(text)
    context = model.config.context
    if len(ids) > context:
        raise InputError(f"the text is {len(ids)} tokens; this model reads at most {context}")
    model.eval()
    with capture_attention(model, layers) as records:
        model(torch.tensor([ids]))
    chosen = sorted(records)
    weights = torch.stack([records[index][0][0] for index in chosen])  # (L, H, T, S)
    return AttentionTrace(weights, tuple(tokenizer.pieces(ids)), tuple(chosen), text, model_name)


def word_spans(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Group token indices into words: ``[(word, [token indices]), …]``, punctuation and spaces dropped."""
    text = "".join(tokens)
    owner: list[int] = []  # character position → token index
    for index, token in enumerate(tokens):
        owner.extend([index] * len(token))
    spans = []
    for match in re.finditer(r"\w[\w']*", text):
        indices = sorted({owner[position] for position in range(match.start(), match.end())})
        spans.append((match.group(0), indices))
    return spans


def word_weights(weights: Tensor, tokens: Sequence[str]) -> tuple[list[str], Tensor]:
    """Fold one layer's head-averaged weights ``(T, S)`` into words: ``(words, (W, W))``.

    Entry ``[a, b]`` is how much word ``a`` attends to word ``b``: the weight its tokens give to ``b``'s
    tokens, summed over ``b``'s tokens and averaged over ``a``'s.
    """
    spans = word_spans(tokens)
    words = [word for word, _ in spans]
    folded = torch.zeros(len(spans), len(spans), dtype=weights.dtype)
    for a, (_, queries) in enumerate(spans):
        for b, (_, keys) in enumerate(spans):
            folded[a, b] = weights[queries][:, keys].sum(dim=1).mean()
    return words, folded
