"""Tokenizers: characters or byte-level BPE, one small interface, saved as self-describing JSON.

Every tokenizer turns text into ids in ``range(vocab_size)`` and back, and writes everything needed to rebuild
it with :meth:`Tokenizer.to_json` (a ``"kind"``, a format ``"version"``, and the kind's data);
:func:`tokenizer_from_json` reads it back and refuses kinds and versions it does not know.

* :class:`CharTokenizer` — one id per distinct character of the training text, in sorted order (the classic
  tinyshakespeare setup: 65 ids). Text with a character it never saw is an error, not a silent ``<unk>``.
* :class:`BPETokenizer` — byte-level BPE trained with Hugging Face ``tokenizers`` (GPT-2's pre-tokenizer
  regex, the 256 byte symbols always in the vocabulary), so any text encodes and decodes exactly.

For multi-megabyte texts use :func:`encode_corpus`, which returns a compact NumPy array and takes the fast
paths (a lookup table for characters, batched encoding over newline-aligned chunks for BPE) — both proven
equal to :meth:`Tokenizer.encode` by the tests.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from qkv.errors import InputError, check_text

if TYPE_CHECKING:
    import tokenizers

__all__ = [
    "DEFAULT_BPE_VOCAB_SIZE",
    "FORMAT_VERSION",
    "BPETokenizer",
    "CharTokenizer",
    "TokenIdsLike",
    "Tokenizer",
    "TokenizerError",
    "TokenizerKind",
    "encode_corpus",
    "tokenizer_from_json",
    "train_tokenizer",
]

FORMAT_VERSION = 1
"""The JSON format version this qkv writes (and the newest it reads) for every tokenizer kind."""

DEFAULT_BPE_VOCAB_SIZE = 2048
"""The BPE vocabulary size :func:`train_tokenizer` uses when none is given."""

_BYTE_ALPHABET_SIZE = 256

TokenIdsLike = Sequence[int] | NDArray[np.integer[Any]]
"""Token ids as a list/tuple of ints or a 1-D integer NumPy array."""


class TokenizerError(InputError):
    """Text or ids a tokenizer cannot handle, or a tokenizer file it cannot read; the message says which."""


class Tokenizer(ABC):
    """Text ↔ ids in ``range(vocab_size)``; ``to_json()`` holds everything needed to rebuild it."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """The number of distinct ids; every id is in ``range(vocab_size)``."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """The ids of ``text``; raises :class:`TokenizerError` if the text cannot be encoded."""

    @abstractmethod
    def decode_bytes(self, ids: TokenIdsLike) -> bytes:
        """The UTF-8 bytes the ids stand for; for streaming, where a token may end inside a character."""

    @abstractmethod
    def to_json(self) -> str:
        """A JSON document with ``"kind"``, ``"version"`` and the data to rebuild this tokenizer."""

    def decode(self, ids: TokenIdsLike) -> str:
        """The text of ``ids``; ``decode(encode(text)) == text``. An incomplete UTF-8 sequence becomes U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def encode_array(self, text: str) -> NDArray[np.int32]:
        """The ids of ``text`` as a 1-D ``int32`` array (the same ids as :meth:`encode`)."""
        return np.asarray(self.encode(text), dtype=np.int32)

    def pieces(self, ids: TokenIdsLike) -> list[str]:
        """Each id's own text, for display (a token that splits a character shows U+FFFD for its part)."""
        return [self.decode_bytes([int(i)]).decode("utf-8", errors="replace") for i in _check_ids(ids, self)]


def _check_ids(ids: TokenIdsLike, tokenizer: Tokenizer) -> NDArray[np.int64]:
    """``ids`` as a 1-D int64 array, every id checked to be in ``range(vocab_size)``."""
    array = np.asarray(ids)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TokenizerError(f"token ids must be a 1-D sequence of integers, got {array.dtype} of shape {array.shape}")
    array = array.astype(np.int64, copy=False)
    bad = np.flatnonzero((array < 0) | (array >= tokenizer.vocab_size))
    if bad.size:
        first = int(bad[0])
        raise TokenizerError(
            f"token id {int(array[first])} at position {first} is out of range for this {tokenizer.kind} "
            f"tokenizer (vocab_size {tokenizer.vocab_size})"
        )
    return array


def _describe(character: str) -> str:
    return f"{character!r} (U+{ord(character):04X})"


# --------------------------------------------------------------------------------------------------------------
# Characters.


class CharTokenizer(Tokenizer):
    """One id per character, ids in the order of ``chars`` (sorted when trained).

    Encoding goes through a code-point lookup table, so multi-megabyte texts encode in tens of milliseconds.
    """

    kind: ClassVar[str] = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if not chars:
            raise TokenizerError("a char tokenizer needs at least one character")
        for position, character in enumerate(chars):
            if not isinstance(character, str) or len(character) != 1:
                raise TokenizerError(f"char tokenizer entry {position} must be one character, got {character!r}")
        if len(set(chars)) != len(chars):
            duplicate = next(c for i, c in enumerate(chars) if c in chars[:i])
            raise TokenizerError(f"char tokenizer lists {_describe(duplicate)} twice")
        self.chars: tuple[str, ...] = tuple(chars)
        self._code_points = np.array([ord(c) for c in chars], dtype=np.uint32)
        self._table = np.full(int(self._code_points.max()) + 1, -1, dtype=np.int32)  # code point → id or -1
        self._table[self._code_points] = np.arange(len(chars), dtype=np.int32)

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        """A tokenizer over the sorted distinct characters of ``text``."""
        if not text:
            raise TokenizerError("cannot train a char tokenizer on empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> NDArray[np.int32]:
        points = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")  # (T,)
        in_table = points < len(self._table)
        ids = self._table[np.where(in_table, points, 0)]
        unknown = np.flatnonzero(~in_table | (ids < 0))
        if unknown.size:
            position = int(unknown[0])
            raise TokenizerError(
                f"character {_describe(text[position])} at position {position} is not in this tokenizer's "
                f"vocabulary of {self.vocab_size} characters; train the tokenizer on text that contains it"
            )
        return ids

    def decode_bytes(self, ids: TokenIdsLike) -> bytes:
        return self.decode(ids).encode("utf-8", errors="surrogatepass")

    def decode(self, ids: TokenIdsLike) -> str:
        points = self._code_points[_check_ids(ids, self)]
        return points.astype("<u4").tobytes().decode("utf-32-le", errors="surrogatepass")

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "version": FORMAT_VERSION, "chars": list(self.chars)})

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# --------------------------------------------------------------------------------------------------------------
# Byte-level BPE.

# A newline between two characters that are neither whitespace nor the start of one: GPT-2's pre-tokenizer
# regex always ends a piece just before such a newline and starts one just after it, so cutting the text there
# gives exactly the pieces of the whole text. (Cutting after "\n\n" would not: at a chunk's end the regex
# keeps "\n\n" as one piece.)
_SAFE_NEWLINE = re.compile(r"(?<=[\w!-/:-@\[-`{-~])\n(?=[\w!-/:-@\[-`{-~])")
_CHUNK_CHARS = 1 << 16


def _chunks(text: str, size: int = _CHUNK_CHARS) -> Iterator[str]:
    """``text`` cut just after safe newlines into pieces of about ``size`` characters; they join to ``text``."""
    start = 0
    while len(text) - start > size:
        match = _SAFE_NEWLINE.search(text, start + size)
        if match is None:
            break
        yield text[start : match.end()]
        start = match.end()
    if start < len(text):
        yield text[start:]


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style) backed by a Hugging Face ``tokenizers.Tokenizer``.

    No normaliser and no added prefix space, so ``decode(encode(text)) == text`` for any text; no special
    tokens. Build one with :meth:`train` or :func:`tokenizer_from_json`.
    """

    kind: ClassVar[str] = "bpe"

    def __init__(self, backend: tokenizers.Tokenizer) -> None:
        self.backend = backend
        self._byte_decoder: dict[str, int] | None = None

    @classmethod
    def train(cls, text: str, vocab_size: int = DEFAULT_BPE_VOCAB_SIZE) -> BPETokenizer:
        """Learn up to ``vocab_size - 256`` merges from ``text`` (fewer if the text runs out of pairs)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < _BYTE_ALPHABET_SIZE:
            raise TokenizerError(
                f"BPE vocab_size must be an integer of at least {_BYTE_ALPHABET_SIZE} (one id per byte), "
                f"got {vocab_size!r}"
            )
        if not text:
            raise TokenizerError("cannot train a BPE tokenizer on empty text")
        backend = HFTokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        backend.train_from_iterator(_chunks(text), trainer=trainer)
        return cls(backend)

    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        check_text("the text", text, TokenizerError)  # the Rust side would raise a bare TypeError
        if len(text) > _CHUNK_CHARS:
            return self.encode_array(text).tolist()
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def encode_array(self, text: str) -> NDArray[np.int32]:
        check_text("the text", text, TokenizerError)
        chunks = list(_chunks(text))
        if not chunks:
            return np.zeros(0, dtype=np.int32)
        batch = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)  # no offsets: faster
        encodings = batch(chunks, add_special_tokens=False)
        return np.concatenate([np.asarray(e.ids, dtype=np.int32) for e in encodings])

    def decode(self, ids: TokenIdsLike) -> str:
        return str(self.backend.decode(_check_ids(ids, self).tolist(), skip_special_tokens=False))

    def decode_bytes(self, ids: TokenIdsLike) -> bytes:
        if self._byte_decoder is None:
            from tokenizers import pre_tokenizers

            # ByteLevel.alphabet() is the 256 printable stand-ins for bytes; map them back (GPT-2's table).
            self._byte_decoder = {symbol: byte for byte, symbol in enumerate(_gpt2_byte_symbols())}
            assert set(self._byte_decoder) == set(pre_tokenizers.ByteLevel.alphabet())
        decoder = self._byte_decoder
        pieces = [self.backend.id_to_token(i) or "" for i in _check_ids(ids, self).tolist()]  # ids are checked
        return bytes(decoder[symbol] for piece in pieces for symbol in piece)

    def to_json(self) -> str:
        backend = json.loads(self.backend.to_str())
        return json.dumps({"kind": self.kind, "version": FORMAT_VERSION, "tokenizers": backend})

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def _gpt2_byte_symbols() -> list[str]:
    """GPT-2's printable stand-in for each byte 0…255 (``bytes_to_unicode``), indexed by byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


# --------------------------------------------------------------------------------------------------------------
# Entry points.

TokenizerKind = Literal["char", "bpe"]


def train_tokenizer(kind: TokenizerKind, text: str, vocab_size: int | None = None) -> Tokenizer:
    """Train a ``"char"`` tokenizer (``vocab_size`` must be None: the text decides it) or a ``"bpe"`` one
    (``vocab_size`` defaults to :data:`DEFAULT_BPE_VOCAB_SIZE`)."""
    if kind == "char":
        if vocab_size is not None:
            raise TokenizerError(
                "a char tokenizer's vocab_size is its number of distinct characters; "
                f"do not pass one (got {vocab_size})"
            )
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, DEFAULT_BPE_VOCAB_SIZE if vocab_size is None else vocab_size)
    raise TokenizerError(f"unknown tokenizer kind {kind!r}; choose 'char' or 'bpe'")


def tokenizer_from_json(text: str) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_json`; unknown kinds and newer versions are errors."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TokenizerError(f"tokenizer JSON is not valid JSON: {error}") from error
    if not isinstance(document, dict) or "kind" not in document or "version" not in document:
        raise TokenizerError('tokenizer JSON must be an object with "kind" and "version" (written by qkv)')
    kind, version = document["kind"], document["version"]
    if kind not in ("char", "bpe"):
        raise TokenizerError(f"unknown tokenizer kind {kind!r} in tokenizer JSON; this qkv reads 'char' and 'bpe'")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise TokenizerError(
            f"{kind} tokenizer JSON has format version {version!r}; this qkv reads versions 1 to {FORMAT_VERSION}"
            " — upgrade qkv to read newer files"
        )
    if kind == "char":
        chars = document.get("chars")
        if not isinstance(chars, list):
            raise TokenizerError('char tokenizer JSON needs a "chars" list')
        return CharTokenizer(chars)
    from tokenizers import Tokenizer as HFTokenizer

    backend = document.get("tokenizers")
    if not isinstance(backend, dict):
        raise TokenizerError('bpe tokenizer JSON needs a "tokenizers" object (the Hugging Face tokenizer)')
    try:
        return BPETokenizer(HFTokenizer.from_str(json.dumps(backend)))
    except Exception as error:  # the Rust side raises a plain Exception
        raise TokenizerError(f"bpe tokenizer JSON holds an unreadable Hugging Face tokenizer: {error}") from error


def encode_corpus(tokenizer: Tokenizer, text: str) -> NDArray[np.unsignedinteger[Any] | np.signedinteger[Any]]:
    """All of ``text`` as a 1-D id array: ``uint16`` when ``vocab_size <= 65536`` (as nanoGPT), else ``int32``.

    Uses the tokenizer's fast path; the ids equal ``tokenizer.encode(text)``. Cast slices to ``int64`` (or
    ``torch.long``) before indexing an embedding.
    """
    ids = tokenizer.encode_array(text)
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.int32
    return ids.astype(dtype, copy=False)
