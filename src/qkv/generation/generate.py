"""Generation as three small functions: prefill the cache with the prompt, decode one token at a time, and
crop when the context is full.

With a KV cache each new token costs one forward pass over one position; without it, over the whole
context (:func:`generate_uncached`, kept as the reference the cached path is tested and measured against).

Every new token is read back in by one decode step (:data:`DecodeStep`, :func:`decode_one_token` unless the
caller passes another): a caller can wrap that step to watch each token go through the model, as
:func:`qkv.inspection.generate_attending` does to capture what each new token attends to.

At batch 1, when the caller passes no step of its own, :func:`generate` runs the Transformer's fast twin
(:class:`~qkv.generation.fast_decoder.FastDecoder`: the same operations on the same weights, without the module
calls) for every model it computes exactly (:func:`~qkv.generation.fast_decoder.supports`: pre-norm causal
decoders such as GPT-2's and Llama's). Both honour the layers' capture points, so attention can be watched on
either. Passing ``decode=decode_one_token`` keeps generation on the module tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import torch

from qkv.attention.kv_cache import KVCache
from qkv.generation import fast_decoder
from qkv.generation.sampling import SamplingConfig, sample_next
from qkv.model.transformer import Transformer, check_token_ids
from qkv.shapes import ShapeError, Tensor

DEFAULT_SAMPLING = SamplingConfig()

__all__ = ["DecodeStep", "decode_one_token", "generate", "generate_uncached", "prefill"]

DecodeStep = Callable[[Transformer, Tensor, list[KVCache]], Tensor]
"""``(model, newest token (B,), cache) → next logits (B, V)``: one step over the cache."""


def prefill(model: Transformer, ids: Tensor, cache: list[KVCache]) -> Tensor:
    """Run the prompt ``(B, T)`` through the model, filling ``cache``; return the last logits ``(B, V)`` (the
    output layer runs on the last position only: the others' logits are never used)."""
    last = model.hidden_states(ids, cache=cache)[:, -1:]  # (B, 1, D)
    return (model.lm_head(last) if model.lm_head is not None else last)[:, -1]


def decode_one_token(model: Transformer, token: Tensor, cache: list[KVCache]) -> Tensor:
    """One step: the newest token ``(B,)`` in, the next logits ``(B, V)`` out."""
    return model(token[:, None], cache=cache)[:, -1]  # (B, 1) → (B, 1, V) → (B, V)


@torch.inference_mode()
def generate(
    model: Transformer,
    prompt: Tensor,
    max_new_tokens: int,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    *,
    generator: torch.Generator | None = None,
    decode: DecodeStep | None = None,
    on_logits: Callable[[Tensor], None] | None = None,
) -> Iterator[Tensor]:
    """Yield ``max_new_tokens`` new tokens ``(B,)``, one at a time (for streaming).

    Each yielded token is read back in through ``decode`` when the caller asks for the next one (the last
    one too, if the caller asks past it: iterating to the end does). Without ``decode``, a batch of one runs
    through :class:`~qkv.generation.fast_decoder.FastDecoder` where it supports the model (the same tokens),
    and everything else through :func:`decode_one_token`.

    When the context fills up, the oldest half is dropped and the rest is prefilled again (positions are
    absolute, so the cache cannot simply slide); the newest token is left out of that prefill and goes
    through ``decode`` like every other.

    ``on_logits``, if given, receives the logits ``(B, V)`` each new token is drawn from, just before it is drawn.
    """
    if prompt.dim() != 2 or prompt.shape[1] == 0:
        raise ShapeError(f"the prompt must be token ids (B, T) with T >= 1, got {tuple(prompt.shape)}")
    context = model.config.context
    if prompt.shape[1] > context:
        raise ShapeError(f"the prompt has {prompt.shape[1]} tokens; this model's context holds {context}")
    check_token_ids(prompt, model.config.vocab_size, "token id", "; encode the prompt with this model's tokenizer")
    model.eval()
    steps: _Steps
    if decode is None and prompt.shape[0] == 1 and fast_decoder.supports(model):
        steps = _FastSteps(model)
    else:
        steps = _ModuleSteps(model, decode_one_token if decode is None else decode)
    window = prompt
    # The positions this generation reaches, if it never crops: a Llama's context is thousands of positions.
    logits = steps.start(window, min(context, prompt.shape[1] + max_new_tokens))  # (B, V)
    for _ in range(max_new_tokens):
        if on_logits is not None:
            on_logits(logits)
        token = sample_next(logits, sampling, generator)  # (B,)
        yield token
        window = torch.cat([window, token[:, None]], dim=1)  # (B, T + 1)
        if window.shape[1] > context:
            window = window[:, -(context // 2 + 1) :]  # keep the newest half (and the new token)
            steps.restart(window[:, :-1], context)  # the newest token goes through the step below
        logits = steps.step(token)


class _Steps(Protocol):
    """How :func:`generate` runs the model: fill a fresh cache with a window, then one token at a time."""

    def start(self, window: Tensor, capacity: int) -> Tensor:
        """A fresh cache of ``capacity`` positions holding ``window (B, T)``; the last position's logits."""
        ...

    def restart(self, window: Tensor, capacity: int) -> None:
        """A fresh cache holding ``window (B, T)`` (possibly empty), after a crop."""
        ...

    def step(self, token: Tensor) -> Tensor:
        """The newest token ``(B,)`` in, the next logits ``(B, V)`` out."""
        ...


class _ModuleSteps:
    """Through the Transformer's modules: any batch, any model, and the caller's decode step."""

    def __init__(self, model: Transformer, decode: DecodeStep) -> None:
        self.model, self.decode = model, decode
        self.cache: list[KVCache] = []

    def start(self, window: Tensor, capacity: int) -> Tensor:
        self.cache = self.model.new_cache(window.shape[0], capacity)
        return prefill(self.model, window, self.cache)

    def restart(self, window: Tensor, capacity: int) -> None:
        self.cache = self.model.new_cache(window.shape[0], capacity)
        if window.shape[1] > 0:
            self.model.hidden_states(window, cache=self.cache)  # fills the cache; the logits come from step

    def step(self, token: Tensor) -> Tensor:
        return self.decode(self.model, token, self.cache)


class _FastSteps:
    """Through :class:`~qkv.generation.fast_decoder.FastDecoder`, at batch 1: the same logits, fewer calls."""

    def __init__(self, model: Transformer) -> None:
        self.model = model
        self.decoder: fast_decoder.FastDecoder | None = None

    def start(self, window: Tensor, capacity: int) -> Tensor:
        self.decoder = fast_decoder.FastDecoder(self.model, capacity)
        return self.decoder.prefill(window[0])[None]  # (1, V)

    def restart(self, window: Tensor, capacity: int) -> None:
        self.decoder = fast_decoder.FastDecoder(self.model, capacity)
        if window.shape[1] > 0:
            self.decoder.prefill(window[0])

    def step(self, token: Tensor) -> Tensor:
        assert self.decoder is not None, "start() comes first"
        return self.decoder.decode(token)[None]  # (1, V)


@torch.inference_mode()
def generate_uncached(
    model: Transformer,
    prompt: Tensor,
    max_new_tokens: int,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    *,
    generator: torch.Generator | None = None,
) -> Iterator[Tensor]:
    """The reference: recompute the whole (cropped) context for every new token."""
    model.eval()
    window = prompt
    for _ in range(max_new_tokens):
        logits = model(window[:, -model.config.context :])[:, -1]  # (B, V)
        token = sample_next(logits, sampling, generator)
        yield token
        window = torch.cat([window, token[:, None]], dim=1)
