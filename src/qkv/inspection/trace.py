"""AttentionTrace: who attends to whom, for one text through one model, as plain data.

    import qkv
    result = qkv.trace(qkv.load("minilm"), "Evan's dog Riley is so hyperactive, she never stops moving")
    result.weights.shape            # (L, H, T, S) = (6, 12, 16, 16)
    result.tokens[:4]               # ('[CLS]', 'Evan', "'", 's')
    result.save("riley.json")       # and AttentionTrace.load("riley.json")

A trace holds the captured weights ``(L, H, T, S)`` of one sequence, the token strings and which of them are
special tokens (``[CLS]``, ``<|im_start|>``); renderers take a trace, never a model. :func:`word_weights` folds
token-level weights into word-level ones (a character-level model sees "riley" as five tokens; a reader thinks
of one word).

The trace is captured at each layer's capture point (``SelfAttention.weights_hook``): the model's output is
still the fused kernel's, and the weights come from the exact path, checked against that output.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from qkv.errors import InputError
from qkv.files import write_atomically
from qkv.inspection.capture import attention_hooks, layer_numbers
from qkv.model.transformer import Transformer
from qkv.shapes import Tensor
from qkv.text.tokenizers import Tokenizer

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_TRACE_BYTES",
    "AttentionTrace",
    "LoadedModel",
    "token_labels",
    "trace",
    "word_spans",
    "word_weights",
]

FORMAT = "qkv-attention-trace"
FORMAT_VERSION = 1
MAX_TRACE_BYTES = 2 * 1024**3  # the weights a trace may hold: L·H·T² float32 numbers


class LoadedModel(Protocol):
    """A model with its tokenizer and a name: :class:`qkv.Model`, the handle :func:`qkv.load` returns."""

    @property
    def model(self) -> Transformer: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, eq=False)
class AttentionTrace:
    """``weights (L, H, T, S)`` for the captured ``layers`` of one sequence of ``tokens``.

    ``tokens`` are the stretches of ``text`` each token covers (they join back to the text), special tokens
    spelled as themselves; ``special[t]`` is ``True`` for those. ``layers`` are the model's layer numbers
    (``weights[i]`` belongs to layer ``layers[i]``); every head of a captured layer is kept.
    """

    weights: Tensor
    tokens: tuple[str, ...]
    layers: tuple[int, ...]
    text: str
    model: str = ""
    special: tuple[bool, ...] = field(default=())

    def __post_init__(self) -> None:
        weights = self.weights
        if weights.dim() != 4:
            raise InputError(f"trace weights must be (L, H, T, S), got shape {tuple(weights.shape)}")
        L, _, T, S = weights.shape
        if len(self.layers) != L:
            raise InputError(f"the trace names {len(self.layers)} layers for weights of {L}")
        if not (len(self.tokens) == T == S):
            raise InputError(f"the trace has {len(self.tokens)} tokens for weights (L, H, T, S) {tuple(weights.shape)}")
        if not self.special:
            object.__setattr__(self, "special", (False,) * T)
        elif len(self.special) != T:
            raise InputError(f"the trace marks {len(self.special)} tokens as special or not, for {T} tokens")

    # -- looking things up ---------------------------------------------------------------------------------

    @property
    def heads(self) -> int:
        """H, the number of heads of each captured layer."""
        return int(self.weights.shape[1])

    @property
    def sinks(self) -> tuple[bool, ...]:
        """The tokens that take attention when nothing in the text is relevant: the special tokens and the
        first token (causal models without a ``<s>`` use their first token as the sink)."""
        return tuple(flag or index == 0 for index, flag in enumerate(self.special))

    @property
    def labels(self) -> list[str]:
        """The tokens for display: surrounding whitespace dropped, a token of only whitespace shown as ``␣``/``⏎``."""
        return token_labels(self.tokens)

    def layer_index(self, layer: int | None) -> int:
        """The index into ``weights`` of a captured model layer (``None``: the last captured one)."""
        if layer is None:
            return len(self.layers) - 1
        if layer not in self.layers:
            held = _ranges(self.layers)
            raise InputError(f"layer {layer} is not in this trace; it holds layer{'s' * (len(self.layers) > 1)} {held}")
        return self.layers.index(layer)

    def head_weights(self, layer: int | None = None, head: int | None = None) -> Tensor:
        """One head's weights ``(T, S)`` of a captured ``layer`` (the last by default); ``head=None`` averages
        the heads."""
        weights = self.weights[self.layer_index(layer)]  # (H, T, S)
        if head is None:
            return weights.mean(dim=0)
        if not 0 <= head < self.heads:
            raise InputError(f"head {head} is out of range; this model has heads 0…{self.heads - 1}")
        return weights[head]

    # -- JSON ----------------------------------------------------------------------------------------------

    def to_json(self) -> str:
        """The trace as a JSON document; weights are float32, little-endian, base64 (exact, and 4/3 of the
        binary size)."""
        array = self.weights.detach().to(torch.float32).cpu().contiguous().numpy().astype("<f4")
        document = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": self.model,
            "text": self.text,
            "tokens": list(self.tokens),
            "special": list(self.special),
            "layers": list(self.layers),
            "weights": {
                "shape": list(array.shape),
                "dtype": "float32",
                "byteorder": "little",
                "base64": base64.b64encode(array.tobytes()).decode("ascii"),
            },
        }
        return json.dumps(document, ensure_ascii=False)

    @classmethod
    def from_json(cls, document: str, *, source: str = "the trace") -> AttentionTrace:
        """Read what :meth:`to_json` wrote; anything else is an :class:`InputError` naming ``source``."""
        try:
            data = json.loads(document)
        except json.JSONDecodeError as error:
            raise InputError(f"{source} is not JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f'{source} is not a qkv attention trace (no "format": "{FORMAT}")')
        if data.get("version") != FORMAT_VERSION:
            raise InputError(
                f"{source} is trace format version {data.get('version')!r}; this qkv reads version {FORMAT_VERSION}"
            )
        try:
            stored = data["weights"]
            shape = tuple(int(n) for n in stored["shape"])
            if stored["dtype"] != "float32" or stored["byteorder"] != "little":
                raise ValueError(f"weights stored as {stored['dtype']} {stored['byteorder']}-endian")
            raw = base64.b64decode(stored["base64"], validate=True)
            array = np.frombuffer(raw, dtype="<f4").reshape(shape)
            return cls(
                weights=torch.from_numpy(array.astype(np.float32)),
                tokens=tuple(str(token) for token in data["tokens"]),
                layers=tuple(int(layer) for layer in data["layers"]),
                text=str(data["text"]),
                model=str(data.get("model", "")),
                special=tuple(bool(flag) for flag in data.get("special", ())),
            )
        except (KeyError, TypeError, ValueError) as error:  # binascii.Error is a ValueError
            raise InputError(f"{source} is a damaged qkv attention trace ({error})") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_json` to ``path`` (atomically: a crash never leaves half a file)."""
        return write_atomically(path, self.to_json().encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AttentionTrace:
        """Read a trace :meth:`save` wrote."""
        try:
            document = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read the trace {path}: {error}") from None
        return cls.from_json(document, source=str(path))

    # -- notebooks -----------------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        """Jupyter shows a trace as the interactive view of :mod:`qkv.render.html` (no network needed)."""
        from qkv.render.html import trace_fragment  # the one upward reference: lazy, for notebooks only

        return trace_fragment(self)

    def __repr__(self) -> str:
        _, H, T, _ = self.weights.shape
        name = f"{self.model!r}, " if self.model else ""
        return f"AttentionTrace({name}{T} tokens, layers {_ranges(self.layers)} × {H} heads, text={self.text!r})"


def _ranges(numbers: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` → ``"0…2, 5"``."""
    parts: list[str] = []
    start = previous = None
    for number in [*numbers, None]:
        if number is not None and previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}…{previous}")
        start = previous = number
    return ", ".join(parts)


_SHOWN = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def token_labels(tokens: Sequence[str]) -> list[str]:
    """Tokens for display: ``" dog"`` → ``"dog"``; a token of only whitespace keeps it visible (``" "`` → ``"␣"``)."""
    labels = []
    for token in tokens:
        stripped = token.strip()
        if not stripped:
            stripped = "".join(_SHOWN.get(character, "·") for character in token) or "∅"
        labels.append(re.sub(r"\s", lambda match: _SHOWN.get(match.group(0), "·"), stripped))
    return labels


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
    hold 1,410 tokens, one of its layers 7,723).
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


# -- words ------------------------------------------------------------------------------------------------


def word_spans(tokens: Sequence[str], special: Sequence[bool] | None = None) -> list[tuple[str, list[int]]]:
    """Group token indices into words: ``[(word, [token indices]), …]``; punctuation, spaces and special tokens
    are dropped."""
    flags = list(special) if special is not None else [False] * len(tokens)
    text = "".join(" " * len(token) if flag else token for token, flag in zip(tokens, flags, strict=True))
    owner: list[int] = []  # character position → token index
    for index, token in enumerate(tokens):
        owner.extend([index] * len(token))
    spans = []
    for match in re.finditer(r"\w[\w']*", text):
        indices = sorted({owner[position] for position in range(match.start(), match.end())})
        spans.append((match.group(0), indices))
    return spans


def word_weights(
    weights: Tensor, tokens: Sequence[str], special: Sequence[bool] | None = None
) -> tuple[list[str], Tensor]:
    """Fold one layer's head-averaged weights ``(T, S)`` into words: ``(words, (W, W))``.

    Entry ``[a, b]`` is how much word ``a`` attends to word ``b``: the weight its tokens give to ``b``'s
    tokens, summed over ``b``'s tokens and averaged over ``a``'s.
    """
    spans = word_spans(tokens, special)
    words = [word for word, _ in spans]
    folded = torch.zeros(len(spans), len(spans), dtype=weights.dtype)
    for a, (_, queries) in enumerate(spans):
        for b, (_, keys) in enumerate(spans):
            folded[a, b] = weights[queries][:, keys].sum(dim=1).mean()
    return words, folded
