"""What each generated token attends to, captured while generating.

    from qkv.inspection import generate_attending
    for step in generate_attending(model, prompt_ids, 20, layer=-1):
        step.token, step.top(3)          # its id; [(key index, weight), …] over the earlier tokens

Generation stays :func:`qkv.generation.generate` (prefill, then one cached step per token, through the fast
decoder where it computes the model). While it reads each new token back in, and only then, the chosen layer's
capture point (``SelfAttention.weights_hook``) is set, so that layer computes that one query row by the exact
path against the cached keys (RoPE already applied to them, ALiBi's bias and the causal mask included), equal
to the fused path's output to float rounding. The prompt's prefill is never captured, and between tokens the
model is left as it was, free for other work.

A token's weights are its own row: what it attends to when it is read back in to predict the next token, as
``qkv attend`` would show its row for the text so far. When the context fills up and generation crops, the
keys are the kept window: ``keys`` always lists the tokens the row covers, ending with the token itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from qkv.errors import InputError
from qkv.generation import GREEDY, SamplingConfig, generate
from qkv.inspection.capture import capture_attention, layer_numbers
from qkv.model.transformer import Transformer
from qkv.shapes import Tensor

__all__ = ["AttendedToken", "generate_attending"]


@dataclass(frozen=True, eq=False)
class AttendedToken:
    """One generated ``token`` and its attention row in ``layer``: ``weights (H, S)`` over ``keys``.

    ``keys`` are the ids of the ``S`` tokens the row covers, the token itself last; ``start`` is where
    ``keys[0]`` sits in the whole sequence (prompt, then generated tokens): 0 until the context crops.
    """

    token: int
    layer: int
    keys: tuple[int, ...]
    start: int
    weights: Tensor

    @property
    def mean(self) -> Tensor:
        """The row averaged over the layer's heads ``(S,)``."""
        return self.weights.mean(dim=0)

    def top(self, k: int = 3, *, head: int | None = None) -> list[tuple[int, float]]:
        """The ``k`` earlier tokens it attends to most, strongest first: ``[(index into keys, weight), …]``.

        The token itself is left out (the weights are not renormalised); ``head=None`` averages the heads.
        """
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        row = self.mean if head is None else self.weights[head]  # (S,)
        earlier = row[:-1]  # (S - 1,): the last key is the token itself
        values, indices = earlier.topk(min(k, earlier.shape[0]))
        return [(int(index), float(value)) for index, value in zip(indices.tolist(), values.tolist(), strict=True)]


def generate_attending(
    model: Transformer,
    prompt: Sequence[int],
    max_new_tokens: int,
    sampling: SamplingConfig = GREEDY,
    *,
    generator: torch.Generator | None = None,
    layer: int = -1,
    stop_ids: Sequence[int] = (),
    on_logits: Callable[[Tensor], None] | None = None,
) -> Iterator[AttendedToken]:
    """Generate like :func:`qkv.generation.generate` (batch 1) and yield each new token with its row in ``layer``.

    ``layer`` counts from 0, or from the end when negative (-1: the last layer). Generation ends before a
    token in ``stop_ids`` (an end-of-turn token), which is not yielded. Each token is yielded once its row is
    known, that is once the next token has been chosen: the stream runs one step behind ``generate``.
    ``on_logits`` receives the logits ``(1, V)`` each token is drawn from (:func:`qkv.generation.generate`'s).
    """
    (chosen,) = layer_numbers(model, [layer])
    sequence = [int(i) for i in prompt]
    stops = {int(i) for i in stop_ids}
    ids = torch.tensor([sequence], dtype=torch.long, device=next(model.parameters()).device)  # (1, T)
    tokens = generate(model, ids, max_new_tokens, sampling, generator=generator, on_logits=on_logits)
    new = next(tokens, None)  # the prefill and the first token: no row is captured
    while new is not None:
        token = int(new[0])
        if token in stops:
            return
        sequence.append(token)
        # Asking for the next token reads this one back in (a crop's prefill may come first: the last call is it).
        with capture_attention(model, [chosen]) as records:
            new = next(tokens, None)
        weights = records[chosen][-1]  # (1, H, 1, S): one new query
        yield _attended(sequence, weights[0, :, -1].float(), chosen)


def _attended(sequence: Sequence[int], row: Tensor, layer: int) -> AttendedToken:
    """The newest token of ``sequence`` with its row ``(H, S)``: the keys are the last ``S`` tokens."""
    S = row.shape[-1]
    return AttendedToken(sequence[-1], layer, tuple(sequence[-S:]), len(sequence) - S, row)
