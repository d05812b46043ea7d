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

It lives here, below every layer that reads it: :func:`qkv.inspection.trace.trace` captures one from a model,
the renderers (:mod:`qkv.render`) draw one, and the article's tour builds small ones for its figures. A trace
shows itself in a notebook through :func:`qkv.render.html.show` (the renderer's object, not this one's).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from qkv.errors import InputError
from qkv.files import write_atomically
from qkv.shapes import Tensor

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "AttentionTrace",
    "token_labels",
    "word_spans",
    "word_weights",
]

FORMAT = "qkv-attention-trace"
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class AttentionTrace:
    """``weights (L, H, T, S)`` for the captured ``layers`` of one sequence of ``tokens``.

    ``tokens`` are the stretches of ``text`` each token covers (in a captured trace they join back to the
    text), special tokens spelled as themselves; ``special[t]`` is ``True`` for those. ``layers`` are the
    model's layer numbers (``weights[i]`` belongs to layer ``layers[i]``); every head of a captured layer is kept.
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

    @cached_property
    def causal(self) -> bool:
        """``True`` when no token attends to a later one in any captured head (the upper triangle is exactly 0):
        the trace of a causal (decoder) model, or of a single token. Looked up once (the weights never change)."""
        T = self.weights.shape[-1]
        future = torch.ones(T, T, dtype=torch.bool, device=self.weights.device).triu(diagonal=1)  # (T, S)
        return not bool(self.weights.detach()[..., future].any())

    @property
    def sinks(self) -> tuple[bool, ...]:
        """The tokens that take attention when nothing in the text is relevant: the special tokens (``[CLS]``,
        ``[SEP]``, ``<|im_start|>``), and the first token of a causal trace (:attr:`causal`) whose first token is
        not special (a causal model without a ``<s>`` parks its spare attention on its first token, whatever it
        is). A bidirectional trace without special tokens (the tour's word traces) has no sinks.

        Every renderer and metric reads this one definition; :attr:`sink_names` says it in words."""
        first = not self.special[0] and self.causal
        return tuple(flag or (index == 0 and first) for index, flag in enumerate(self.special))

    @property
    def sink_labels(self) -> list[str]:
        """The distinct :attr:`labels` of the sink tokens, in order (``["[CLS]", "[SEP]"]``)."""
        return list(dict.fromkeys(label for label, sink in zip(self.labels, self.sinks, strict=True) if sink))

    @property
    def sink_names(self) -> str:
        """The sinks in words, as the renderers print them: ``"[CLS] [SEP]"``, ``"The, the first token"``, or
        ``"none"``."""
        labels = self.labels
        special = " ".join(dict.fromkeys(label for label, flag in zip(labels, self.special, strict=True) if flag))
        if self.sinks[0] and not self.special[0]:
            return f"{labels[0]}, the first token" + (f", and {special}" if special else "")
        return special or "none"

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

    def __repr__(self) -> str:
        """One short line, whatever the trace's size: ``AttentionTrace(model='minilm', tokens=16, layers=0…5,
        heads=12, text="Evan's dog Riley is so…")`` (no weights; the text cut to ``REPR_TEXT`` characters)."""
        _, H, T, _ = self.weights.shape
        model = f"model={_cut(self.model, 2 * REPR_TEXT)!r}, " if self.model else ""
        return (
            f"AttentionTrace({model}tokens={T}, layers={_cut(_ranges(self.layers), REPR_TEXT)}, heads={H}, "
            f"text={_cut(self.text, REPR_TEXT)!r})"
        )


#: How many characters of the text a trace's ``repr`` shows (of the model's name: twice as many).
REPR_TEXT = 24


def _cut(text: str, length: int) -> str:
    """``text`` on one line, at most ``length`` characters: longer is cut with ``…``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"


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
