"""The article's "vector database", filled with real vectors from MiniLM (all-MiniLM-L6-v2).

The article imagines a lookup table where every word has context-free vectors: a value ``v`` (Part 1),
a unit key ``k`` (Part 2) and a query ``q`` (Part 3). This module makes that table real:

* **value** ``v``: MiniLM's input token embedding for the word (``embeddings.word_embeddings.weight``),
  averaged over the word's pieces when the tokenizer splits it (``hyperactive`` → ``hyper`` + ``##active``).
* **key** ``k``: the first layer's learned key projection applied to that embedding,
  ``embedding @ W_kᵀ + b_k``, divided by its length so that it is a unit vector, as Part 2 asks.
* **query** ``q``: the first layer's learned query projection, ``embedding @ W_qᵀ + b_q`` (not normalised:
  the article never asks for unit queries).

Two simplifications, both in the article's spirit: no position embeddings (the article's vectors know
nothing about where a word stands), and no embedding LayerNorm (values, keys and queries all come from the
same raw embedding). The projections are the full width D = 384, all twelve heads side by side.

Nothing is read at import time. :class:`VectorDatabase` opens the tokenizer and the few tensors it needs
on first use (the embedding rows of the words asked for, and the two projections), then keeps them. It finds
MiniLM's files as ``qkv.load("minilm")`` does (:func:`qkv.data.registry.find_packaged`: the pinned package,
its weights checked against their sha256), and a missing package is the same one-line error with the same
install command.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch
from tokenizers import Encoding, Tokenizer

from qkv.article.first_layer import FirstLayer, read_first_layer
from qkv.data.registry import PACKAGED, PretrainedError, find_packaged
from qkv.data.tensors import read_rows
from qkv.errors import InputError
from qkv.shapes import Tensor

__all__ = [
    "MODEL",
    "SENTENCE",
    "VectorDatabase",
    "default_database",
    "get_key",
    "get_keys",
    "get_queries",
    "get_query",
    "get_value",
    "get_values",
    "split_words",
]

#: The sentence the article reads, word by word.
SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"

#: The packaged model whose vectors the article reads (:data:`qkv.data.registry.PACKAGED`).
MODEL = "minilm"

_WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
_FILES = ("tokenizer.json", "config.json", "model.safetensors")


def split_words(sentence: str) -> list[str]:
    """The article's ``sentence.split()``, made concrete for an uncased model.

    Split on whitespace, strip punctuation at the edges of each word, lower-case (MiniLM is uncased). A
    possessive stays one word: ``"Evan's dog Riley"`` → ``["evan's", "dog", "riley"]``.
    """
    words = [word.strip(string.punctuation).lower() for word in sentence.split()]
    return [word for word in words if word]


class VectorDatabase:
    """Context-free value, key and query vectors for words, read lazily from MiniLM.

    Vectors come back in ``dtype`` (float64 by default: the article is about maths, and exact comparisons
    read better without float32 rounding). Every vector has the model width D = 384.
    """

    def __init__(self, model_dir: Path | None = None, *, dtype: torch.dtype = torch.float64) -> None:
        self._model_dir = model_dir
        self._model_dir_checked = False
        self.dtype = dtype
        self._tokenizer: Tokenizer | None = None  # loaded on first use
        self._rows: dict[int, Tensor] = {}  # token id → embedding row (D,)
        self._encodings: dict[str, Encoding] = {}  # word → its pieces, tokenized once
        self._first_layer: FirstLayer | None = None

    # -- loading ------------------------------------------------------------------------------------------

    @property
    def model_dir(self) -> Path:
        """MiniLM's folder: the one given, or the packaged model's (found and checked on first use)."""
        if self._model_dir is None:
            _, self._model_dir = find_packaged(MODEL)
        if not self._model_dir_checked:
            for name in _FILES:
                if not (self._model_dir / name).is_file():
                    raise PretrainedError(
                        f"MiniLM's {name} is not in {self._model_dir}; the article's vectors come with: "
                        f"{PACKAGED[MODEL].install_command}"
                    )
            self._model_dir_checked = True
        return self._model_dir

    def pieces(self, word: str) -> list[str]:
        """The word pieces MiniLM's tokenizer cuts ``word`` into (no ``[CLS]``/``[SEP]``)."""
        return list(self._encode(word).tokens)

    def _encode(self, word: str) -> Encoding:
        if word not in self._encodings:
            self._encodings[word] = self._tokenize(word)
        return self._encodings[word]

    def _tokenize(self, word: str) -> Encoding:
        if self._tokenizer is None:
            tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
            tokenizer.no_padding()  # the file pads every input to 128 tokens by default
            self._tokenizer = tokenizer
        encoding = self._tokenizer.encode(word, add_special_tokens=False)
        if not encoding.ids:
            raise InputError(f"{word!r} has no word pieces: give a word with letters or digits")
        if "[UNK]" in encoding.tokens:
            raise InputError(f"MiniLM's vocabulary has no pieces for {word!r} (it reads as [UNK]); give another word")
        return encoding

    def _embedding_rows(self, ids: Sequence[int]) -> Tensor:
        """Rows of the token-embedding matrix, read one by one from the file (never the whole 30522 × D)."""
        missing = [i for i in dict.fromkeys(ids) if i not in self._rows]
        if missing:
            rows = read_rows(self.model_dir / "model.safetensors", _WORD_EMBEDDINGS, missing)  # (missing, D)
            self._rows.update(zip(missing, rows.to(self.dtype), strict=True))
        return torch.stack([self._rows[i] for i in ids])  # (pieces, D)

    def first_layer(self) -> FirstLayer:
        """MiniLM's embedding block and first attention layer as the model runs them (read once): the
        positions, LayerNorm, value projection and heads that the article's vectors leave out."""
        if self._first_layer is None:
            self._first_layer = read_first_layer(self.model_dir, self.dtype)
        return self._first_layer

    # -- the article's lookups ----------------------------------------------------------------------------

    def embedding(self, word: str) -> Tensor:
        """The word's input embedding ``(D,)``: the mean of its pieces' rows."""
        ids = list(self._encode(word).ids)
        return self._embedding_rows(ids).mean(dim=0)  # (pieces, D) → (D,)

    def embeddings(self, words: Sequence[str]) -> Tensor:
        """``(T, D)``: one embedding per word."""
        if not words:
            raise InputError("no words given; give at least one word")
        pieces = [list(self._encode(word).ids) for word in words]
        self._embedding_rows([i for ids in pieces for i in ids])  # every missing row in one reading of the file
        return torch.stack([self._embedding_rows(ids).mean(dim=0) for ids in pieces])  # (T, D)

    def values(self, words: Sequence[str]) -> Tensor:
        """``(T, D)``: the article's ``get_values(words)``, the words' context-free meanings."""
        return self.embeddings(words)

    def keys(self, words: Sequence[str], *, unit: bool = True) -> Tensor:
        """``(S, D)``: the article's ``get_keys(words)``; unit length unless ``unit=False``."""
        weight, bias = self.first_layer().to_k
        keys = self.embeddings(words) @ weight.T + bias  # (S, D)
        return keys / keys.norm(dim=-1, keepdim=True) if unit else keys

    def queries(self, words: Sequence[str]) -> Tensor:
        """``(T, D)``: the article's ``get_queries(words)``."""
        weight, bias = self.first_layer().to_q
        return self.embeddings(words) @ weight.T + bias  # (T, D)

    def value(self, word: str) -> Tensor:
        """``(D,)``: the article's ``get_value(word)``."""
        return self.values([word])[0]

    def key(self, word: str, *, unit: bool = True) -> Tensor:
        """``(D,)``: the article's ``get_key(word)``, a unit vector."""
        return self.keys([word], unit=unit)[0]

    def query(self, word: str) -> Tensor:
        """``(D,)``: the article's ``get_query(word)``."""
        return self.queries([word])[0]


@cache
def default_database() -> VectorDatabase:
    """The shared database behind :func:`get_value` and friends (created on first call, then reused)."""
    return VectorDatabase()


# The article's own spelling: free functions over one shared database.


def get_value(word: str) -> Tensor:
    """``(D,)``: the word's value vector ``v``."""
    return default_database().value(word)


def get_key(word: str) -> Tensor:
    """``(D,)``: the word's unit key vector ``k``."""
    return default_database().key(word)


def get_query(word: str) -> Tensor:
    """``(D,)``: the word's query vector ``q``."""
    return default_database().query(word)


def get_values(words: Sequence[str]) -> Tensor:
    """``(T, D)``: one value per word."""
    return default_database().values(words)


def get_keys(words: Sequence[str]) -> Tensor:
    """``(S, D)``: one unit key per word."""
    return default_database().keys(words)


def get_queries(words: Sequence[str]) -> Tensor:
    """``(T, D)``: one query per word."""
    return default_database().queries(words)
