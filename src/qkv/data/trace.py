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
import io
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from qkv.errors import InputError
from qkv.files import open_atomically
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
        binary size). For a large trace prefer :meth:`save` or :meth:`write_json`: this string is the whole file."""
        buffer = io.BytesIO()
        self.write_json(buffer)
        return buffer.getvalue().decode("utf-8")

    def write_json(self, file: BinaryIO) -> None:
        """Write :meth:`to_json`'s document, UTF-8, to a binary ``file`` with the weights' base64 encoded a few MiB
        at a time: writing holds no copy of the weights, however large the trace."""
        document = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": self.model,
            "text": self.text,
            "tokens": list(self.tokens),
            "special": list(self.special),
            "layers": list(self.layers),
            "weights": {
                "shape": list(self.weights.shape),
                "dtype": "float32",
                "byteorder": "little",
                "base64": "",
            },
        }
        # "base64" is the last field of the last field: the document ends with its (empty) string and two braces.
        head = json.dumps(document, ensure_ascii=False).removesuffix('"}}')
        file.write(head.encode("utf-8"))
        for piece in _base64_pieces(_float32_blocks(self.weights)):
            file.write(piece)
        file.write(b'"}}')

    @classmethod
    def from_json(cls, document: str | bytes, *, source: str = "the trace") -> AttentionTrace:
        """Read what :meth:`to_json` wrote; anything else is an :class:`InputError` naming ``source``."""
        return cls._from_data(_parse(document, source), source)

    @classmethod
    def _from_data(cls, data: object, source: str) -> AttentionTrace:
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
            return cls(
                weights=_decode_float32(stored["base64"], shape),
                tokens=tuple(str(token) for token in data["tokens"]),
                layers=tuple(int(layer) for layer in data["layers"]),
                text=str(data["text"]),
                model=str(data.get("model", "")),
                special=tuple(bool(flag) for flag in data.get("special", ())),
            )
        except (KeyError, TypeError, ValueError) as error:  # binascii.Error is a ValueError
            raise InputError(f"{source} is a damaged qkv attention trace ({error})") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON document to ``path``, atomically (a crash never leaves half a file) and streaming (see
        :meth:`write_json`)."""
        with open_atomically(path) as file:
            self.write_json(file)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AttentionTrace:
        """Read a trace :meth:`save` wrote (holding the file's text and its weights' base64 once each, briefly)."""
        return cls._from_data(_read(path), str(path))

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


# -- the weights in JSON -------------------------------------------------------------------------------

_BLOCK_BYTES = 4 * 1024**2  # how much of the weights is converted and encoded at a time
_BLOCK_CHARACTERS = 4 * 1024**2  # how much base64 is decoded at a time: a multiple of 4


def _float32_blocks(weights: Tensor) -> Iterator[np.ndarray]:
    """The weights ``(L, H, T, S)`` as little-endian float32, in order, a block of rows at a time: a float32 CPU
    tensor is read in place, any other converted one block at a time."""
    S = weights.shape[-1]
    rows = max(1, _BLOCK_BYTES // max(1, 4 * S))
    for layer in weights.detach():  # (H, T, S)
        for head in layer:  # (T, S)
            for start in range(0, head.shape[0], rows):
                block = head[start : start + rows].to(device="cpu", dtype=torch.float32)  # (rows, S)
                yield np.ascontiguousarray(block.numpy(), dtype="<f4")


def _base64_pieces(blocks: Iterator[np.ndarray]) -> Iterator[bytes]:
    """base64 of the blocks' bytes, in pieces that join into exactly one ``base64.b64encode`` of all of them:
    every piece but the last encodes a multiple of 3 bytes (the rest waits for the next block)."""
    pending = b""
    for block in blocks:
        data = block.data.cast("B")
        if pending:
            take = 3 - len(pending)
            pending += data[:take].tobytes()
            data = data[take:]
            if len(pending) < 3:
                continue
            yield base64.b64encode(pending)
        whole = len(data) - len(data) % 3
        yield base64.b64encode(data[:whole])
        pending = data[whole:].tobytes()
    yield base64.b64encode(pending)


def _decode_float32(encoded: object, shape: tuple[int, ...]) -> Tensor:
    """The weights ``shape`` from their base64, decoded a piece at a time straight into the tensor."""
    if not isinstance(encoded, str):
        raise ValueError("the weights' base64 is not a string")
    if any(n < 0 for n in shape):
        raise ValueError(f"the weights' shape {list(shape)} has a negative size")
    size = 4 * math.prod(shape)
    if len(encoded) != 4 * -(-size // 3):  # base64 of n bytes: 4 characters per started 3 bytes
        raise ValueError(f"{len(encoded)} base64 characters cannot hold the {size} bytes of weights {list(shape)}")
    array = np.empty(shape, dtype="<f4")
    target = array.reshape(-1).view(np.uint8)  # (4 · numel,)
    filled = 0
    for start in range(0, len(encoded), _BLOCK_CHARACTERS):
        raw = base64.b64decode(encoded[start : start + _BLOCK_CHARACTERS], validate=True)
        if filled + len(raw) > size:
            raise ValueError("the weights' base64 holds more bytes than their shape")
        target[filled : filled + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        filled += len(raw)
    if filled != size:  # padding in the middle of the base64 stops a piece short
        raise ValueError(f"the weights' base64 holds {filled} bytes, not the {size} of weights {list(shape)}")
    return torch.from_numpy(array.astype(np.float32, copy=False))


def _parse(document: str | bytes, source: str) -> object:
    try:
        return json.loads(document)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{source} is not JSON ({error})") from None


def _read(path: str | os.PathLike[str]) -> object:
    """The parsed document at ``path``; its text is let go as soon as it is parsed."""
    try:
        document = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read the trace {path}: {error}") from None
    return _parse(document, str(path))


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
