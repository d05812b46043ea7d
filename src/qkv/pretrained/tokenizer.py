"""A pretrained model's own tokenizer behind qkv's :class:`~qkv.text.tokenizers.Tokenizer` interface.

A Hugging Face ``tokenizers.Tokenizer`` does the work: WordPiece for BERT (from ``tokenizer.json``), byte-level
BPE for GPT-2 and Llama-family models (from ``tokenizer.json``, or rebuilt from a GGUF's metadata).
:meth:`PretrainedTokenizer.encode` adds the special tokens the model was trained with (``[CLS] … [SEP]`` for
BERT; SmolLM2 adds none); padding and truncation are switched off: a text is never silently cut.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from qkv.text.tokenizers import FORMAT_VERSION, TokenIdsLike, Tokenizer, TokenizerError, _check_ids, _gpt2_byte_symbols

if TYPE_CHECKING:
    import tokenizers

__all__ = ["PretrainedTokenizer"]


class PretrainedTokenizer(Tokenizer):
    """Text ↔ ids for a pretrained model; ``byte_level`` tokenizers decode to exact bytes."""

    kind: ClassVar[str] = "pretrained"

    def __init__(self, backend: tokenizers.Tokenizer, *, pad_id: int | None = None) -> None:
        backend.no_padding()  # tokenizer.json files often pad every input to a fixed length
        backend.no_truncation()
        self.backend = backend
        self.byte_level = _is_byte_level(backend)
        self.pad_id = pad_id
        self._byte_decoder: dict[str, int] | None = None
        self._special = frozenset(
            token.content for token in backend.get_added_tokens_decoder().values() if token.special
        )

    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``, with the special tokens the model expects around a single text."""
        return list(self._encode(text).ids)

    def _encode(self, text: str) -> tokenizers.Encoding:
        try:
            return self.backend.encode(text, add_special_tokens=True)
        except Exception as error:  # the Rust side raises a plain Exception (e.g. a character with no token)
            raise TokenizerError(f"this model's tokenizer cannot encode the text: {error}") from None

    def encode_with_pieces(self, text: str) -> tuple[list[int], list[str]]:
        """The ids of ``text`` and, for each, the stretch of ``text`` it covers (with the whitespace before it),
        so the pieces join back to ``text``; special tokens show as themselves (``[CLS]``)."""
        encoding = self._encode(text)
        pieces, end = [], 0
        for token, (start, stop), special in zip(
            encoding.tokens, encoding.offsets, encoding.special_tokens_mask, strict=True
        ):
            if special and token in self._special:  # added around the text ([CLS]) or found in it (<|im_end|>)
                pieces.append(token)
                end = max(end, stop)
                continue
            pieces.append(text[min(end, start) : stop])
            end = max(end, stop)
        return list(encoding.ids), pieces

    def encode_batch(self, texts: Sequence[str], *, max_length: int | None = None) -> list[list[int]]:
        """:meth:`encode` for several texts at once (not padded); ``max_length`` cuts longer ones, keeping
        their special tokens (as sentence-transformers cuts its inputs)."""
        if max_length is None:
            return [list(e.ids) for e in self.backend.encode_batch(list(texts), add_special_tokens=True)]
        self.backend.enable_truncation(max_length)
        try:
            return [list(e.ids) for e in self.backend.encode_batch(list(texts), add_special_tokens=True)]
        finally:
            self.backend.no_truncation()

    def token_id(self, token: str) -> int | None:
        """The id of a token string such as ``"<|im_end|>"``, or None if the vocabulary lacks it."""
        found = self.backend.token_to_id(token)
        return None if found is None else int(found)

    def is_special(self, token_id: int) -> bool:
        return self.backend.id_to_token(token_id) in self._special

    def decode(self, ids: TokenIdsLike, *, skip_special_tokens: bool = False) -> str:
        return str(self.backend.decode(_check_ids(ids, self).tolist(), skip_special_tokens=skip_special_tokens))

    def decode_bytes(self, ids: TokenIdsLike) -> bytes:
        """The bytes ``ids`` stand for: exact for byte-level BPE, the decoded text's UTF-8 otherwise."""
        checked = _check_ids(ids, self).tolist()
        if not self.byte_level:
            return str(self.backend.decode(checked, skip_special_tokens=False)).encode("utf-8")
        if self._byte_decoder is None:
            self._byte_decoder = {symbol: byte for byte, symbol in enumerate(_gpt2_byte_symbols())}
        decoder = self._byte_decoder
        out = bytearray()
        for token_id in checked:
            piece = self.backend.id_to_token(token_id) or ""
            if piece in self._special or not all(symbol in decoder for symbol in piece):
                out += piece.encode("utf-8")  # special tokens are spelled as themselves
            else:
                out += bytes(decoder[symbol] for symbol in piece)
        return bytes(out)

    def pieces(self, ids: TokenIdsLike) -> list[str]:
        """Each id's own text, for display; WordPiece continuations (``##active``) lose their ``##`` and every
        other WordPiece token gets the space that precedes it in the text."""
        if self.byte_level:
            return super().pieces(ids)
        pieces = []
        for token_id in _check_ids(ids, self).tolist():
            token = self.backend.id_to_token(token_id) or ""
            if token in self._special:
                pieces.append(token)
            elif token.startswith("##"):
                pieces.append(token[2:])
            else:
                pieces.append(" " + token)
        return pieces

    def to_json(self) -> str:
        backend = json.loads(self.backend.to_str())
        return json.dumps({"kind": self.kind, "version": FORMAT_VERSION, "pad_id": self.pad_id, "tokenizers": backend})

    def __repr__(self) -> str:
        family = "byte-level BPE" if self.byte_level else type(self.backend.model).__name__
        return f"PretrainedTokenizer({family}, vocab_size={self.vocab_size})"


def _is_byte_level(backend: tokenizers.Tokenizer) -> bool:
    """Whether the tokenizer decodes through GPT-2's byte alphabet (read from its decoder alone: cheap)."""
    if backend.decoder is None:
        return False
    decoder = json.loads(backend.decoder.__getstate__())
    kinds = [decoder.get("type")] + [d.get("type") for d in decoder.get("decoders") or ()]
    return "ByteLevel" in kinds


def tokenizer_from_file(path: str, *, pad_id: int | None = None) -> PretrainedTokenizer:
    """A ``tokenizer.json`` read with Hugging Face ``tokenizers``; an unreadable file is a :class:`TokenizerError`."""
    from tokenizers import Tokenizer as HFTokenizer

    try:
        backend = HFTokenizer.from_file(path)
    except Exception as error:  # the Rust side raises a plain Exception
        raise TokenizerError(f"cannot read the tokenizer {path}: {error}") from None
    return PretrainedTokenizer(backend, pad_id=pad_id)
