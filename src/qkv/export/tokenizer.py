"""A run's tokenizer in the forms other tools read: a ``tokenizers`` ``tokenizer.json`` and GGUF vocabulary metadata.

Both keep every id: text encodes to the run's own ids and the ids decode to the same text.

* **Byte-level BPE** is already a ``tokenizers`` tokenizer: its ``tokenizer.json`` is written as it is, and GGUF
  gets its tokens and merges as llama.cpp's ``gpt2`` tokenizer model, with GPT-2's own pre-tokenizer (llama.cpp
  names it ``gpt-2``).
* **Characters** become, for ``tokenizers``, a word-level model over a split into single characters whose
  unknown token is not in the vocabulary: a character the run never saw is an error there too, as in qkv.
  For GGUF they become a SentencePiece vocabulary of single characters (llama.cpp's ``llama`` tokenizer model,
  no space prefix, no BOS): SentencePiece writes a space as ``▁`` (U+2581), so a run whose text held ``▁``
  itself cannot be written this way. (A byte-level BPE cannot hold them: the gguf package writes no empty merge
  list, and a character of several UTF-8 bytes would need tokens for its bytes.) llama.cpp finds no token for a
  character outside the vocabulary either (its byte fallback has no ``<0xXX>`` tokens to fall back to), nor
  does qkv's GGUF reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from qkv.export.support import ExportError
from qkv.text.tokenizers import BPETokenizer, CharTokenizer, Tokenizer

__all__ = [
    "SPACE_PIECE",
    "UNKNOWN",
    "GGUFVocabulary",
    "gguf_vocabulary",
    "hf_tokenizer_config",
    "hf_tokenizer_json",
]

UNKNOWN = "<unk>"
"""The word-level model's unknown token: never in the vocabulary, so an unknown character is an error."""

SPACE_PIECE = "\u2581"
"""SentencePiece's stand-in for a space."""

_NORMAL = 1  # llama.cpp's token type of an ordinary token


@dataclass(frozen=True)
class GGUFVocabulary:
    """The ``tokenizer.ggml.*`` metadata of one tokenizer."""

    model: Literal["gpt2", "llama"]
    pre: str | None
    tokens: list[str]
    merges: list[str]  # "left right", most frequent first (BPE only)
    scores: list[float] | None  # SentencePiece only
    types: list[int]


def _check_chars(tokenizer: CharTokenizer) -> None:
    for character in tokenizer.chars:
        if 0xD800 <= ord(character) <= 0xDFFF:
            raise ExportError(
                f"the char tokenizer holds the lone surrogate U+{ord(character):04X}, which no UTF-8 file can "
                "hold; retrain on valid text"
            )


def _bpe_backend(tokenizer: BPETokenizer) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(tokenizer.backend.to_str())
    if document.get("added_tokens"):
        raise ExportError("the BPE tokenizer has added tokens, which qkv's exporter does not carry over")
    return document


def hf_tokenizer_json(tokenizer: Tokenizer) -> str:
    """The ``tokenizer.json`` text that Hugging Face ``tokenizers`` loads with the same ids as ``tokenizer``."""
    if isinstance(tokenizer, BPETokenizer):
        _bpe_backend(tokenizer)
        return str(tokenizer.backend.to_str(pretty=True))
    if isinstance(tokenizer, CharTokenizer):
        from tokenizers import Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as HFTokenizer

        _check_chars(tokenizer)
        vocabulary = {character: index for index, character in enumerate(tokenizer.chars)}
        backend = HFTokenizer(models.WordLevel(vocabulary, unk_token=UNKNOWN))
        backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one piece per char
        backend.decoder = decoders.Fuse()  # pieces join with nothing between them
        return str(backend.to_str(pretty=True))
    raise ExportError(f"a {tokenizer.kind} tokenizer cannot be exported; qkv exports char and bpe tokenizers")


def hf_tokenizer_config(context: int) -> dict[str, Any]:
    """``tokenizer_config.json``: ``AutoTokenizer`` wraps ``tokenizer.json`` as it is, no special tokens added,
    no spaces cleaned up on decoding."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": context,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
    }


def gguf_vocabulary(tokenizer: Tokenizer) -> GGUFVocabulary:
    """The GGUF metadata that llama.cpp and qkv's GGUF reader turn back into ``tokenizer``'s ids."""
    if isinstance(tokenizer, BPETokenizer):
        model = _bpe_backend(tokenizer)["model"]
        by_id = sorted((index, token) for token, index in model["vocab"].items())
        tokens = [token for _, token in by_id]
        if [index for index, _ in by_id] != list(range(len(tokens))):
            raise ExportError("the BPE tokenizer's ids are not 0 … n-1; GGUF lists one token per id")
        merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"]]
        if any(" " in token for token in tokens):  # byte-level tokens spell a space as Ġ
            raise ExportError("the BPE tokenizer has a token with a space in it, which GGUF merges cannot list")
        return GGUFVocabulary("gpt2", "gpt-2", tokens, merges, None, [_NORMAL] * len(tokens))
    if isinstance(tokenizer, CharTokenizer):
        _check_chars(tokenizer)
        if SPACE_PIECE in tokenizer.chars:
            raise ExportError(
                f"the char tokenizer holds {SPACE_PIECE!r} (U+2581), which SentencePiece reserves for the space; "
                "GGUF cannot tell the two apart: export with --to hf instead"
            )
        tokens = [SPACE_PIECE if character == " " else character for character in tokenizer.chars]
        return GGUFVocabulary("llama", None, tokens, [], [0.0] * len(tokens), [_NORMAL] * len(tokens))
    raise ExportError(f"a {tokenizer.kind} tokenizer cannot be exported; qkv exports char and bpe tokenizers")
