"""Tokenizers: exact round trips, JSON that rebuilds the same tokenizer, fast paths equal to the plain ones."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from qkv.text import tokenizers as tokenizers_module
from qkv.text.tokenizers import (
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    TokenizerError,
    encode_corpus,
    tokenizer_from_json,
    train_tokenizer,
)

ODD = "Año — naïve café 漢字 🙂 tab\there\r\n  "


WORDS = "the queen king speak my lord sweet love night day death what thou art hath I'll don't 42 — ñ"
SYLLABLES = "ba ce di fo gu ha je ki lo mu na pe qui ro su ta ve wi xo yu za"


def sample_text(n_chars: int, seed: int = 0) -> str:
    """Varied English-like text with awkward whitespace: blank lines, indents, trailing spaces, CRLF."""
    rng = random.Random(seed)
    words = WORDS.split()
    syllables = SYLLABLES.split()
    words += ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(2000)]
    gaps = [" ", " ", " ", ", ", ".\n", "\n\n", "  \n", "\n  ", "\r\n", "!\n\nKING:\n", "; "]
    parts: list[str] = []
    size = 0
    while size < n_chars:
        part = rng.choice(words) + rng.choice(gaps)
        parts.append(part)
        size += len(part)
    return "".join(parts)


@pytest.fixture(scope="module")
def text() -> str:
    return sample_text(200_000)


@pytest.fixture(scope="module")
def bpe(text: str) -> BPETokenizer:
    return BPETokenizer.train(text, vocab_size=400)


@pytest.fixture(scope="module")
def char(text: str) -> CharTokenizer:
    return CharTokenizer.train(text + ODD)


# ------------------------------------------------------------------------------------------------------------
# Characters.


def test_char_vocabulary_is_the_sorted_distinct_characters(char: CharTokenizer, text: str) -> None:
    assert list(char.chars) == sorted(set(text + ODD)) and char.vocab_size == len(set(text + ODD))


def test_char_round_trip(char: CharTokenizer) -> None:
    ids = char.encode(ODD)
    assert len(ids) == len(ODD) and char.decode(ids) == ODD and char.decode(np.asarray(ids)) == ODD


def test_char_fast_encode_equals_a_lookup_per_character(char: CharTokenizer, text: str) -> None:
    index = {c: i for i, c in enumerate(char.chars)}
    assert char.encode(text) == [index[c] for c in text]


def test_char_unknown_character_names_it_and_its_position(char: CharTokenizer) -> None:
    with pytest.raises(TokenizerError, match=r"character 'Ω' \(U\+03A9\) at position 4 is not in"):
        char.encode("the Ω")
    with pytest.raises(TokenizerError, match=r"'\\U0010ffff' \(U\+10FFFF\) at position 0"):  # beyond the table
        char.encode("\U0010ffff")


def test_char_decode_rejects_ids_out_of_range(char: CharTokenizer) -> None:
    with pytest.raises(TokenizerError, match=rf"token id {char.vocab_size} at position 1 is out of range"):
        char.decode([0, char.vocab_size])


# ------------------------------------------------------------------------------------------------------------
# Byte-level BPE.


def test_bpe_round_trip_for_any_text(bpe: BPETokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(ODD)) == ODD  # characters it never saw encode as bytes
    assert bpe.decode_bytes(bpe.encode(ODD)) == ODD.encode()
    assert bpe.decode(bpe.encode(text[:5000])) == text[:5000]


def test_bpe_respects_vocab_size(bpe: BPETokenizer) -> None:
    assert bpe.vocab_size == 400
    assert max(bpe.encode(sample_text(20_000, seed=1))) < 400
    assert BPETokenizer.train("ab ab ab", vocab_size=1000).vocab_size < 1000  # runs out of pairs: fewer merges
    with pytest.raises(TokenizerError, match="at least 256"):
        BPETokenizer.train("text", vocab_size=255)


def test_bpe_merges_something(bpe: BPETokenizer) -> None:
    assert len(bpe.encode(" the queen")) < len(b" the queen")


def test_bpe_training_is_deterministic(bpe: BPETokenizer, text: str) -> None:
    assert BPETokenizer.train(text, vocab_size=400).to_json() == bpe.to_json()


def test_bpe_chunks_join_back_and_cut_only_at_safe_newlines(text: str) -> None:
    chunks = list(tokenizers_module._chunks(text, size=1000))
    assert "".join(chunks) == text and len(chunks) > 50
    assert all(c.endswith("\n") and not c.endswith(("\n\n", " \n", "\r\n")) for c in chunks[:-1])


def test_bpe_pieces_show_each_token(bpe: BPETokenizer) -> None:
    ids = bpe.encode("the queen 漢")
    assert "".join(bpe.pieces(ids)[:-3]) + bpe.decode(ids[-3:]) == "the queen 漢"
    assert bpe.pieces(bpe.encode("漢")) == ["\ufffd"] * 3  # an unseen character: three byte tokens


# ------------------------------------------------------------------------------------------------------------
# Both kinds: fast corpus encoding and JSON.


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_encode_corpus_equals_encode(kind: str, char: CharTokenizer, bpe: BPETokenizer, text: str) -> None:
    tokenizer: Tokenizer = char if kind == "char" else bpe
    ids = encode_corpus(tokenizer, text)
    assert ids.dtype == np.uint16 and ids.ndim == 1
    assert len(ids) > 40_000 and ids.tolist() == tokenizer.encode(text)
    if kind == "bpe":  # the chunked path against Hugging Face's encoding of the whole text at once
        assert ids.tolist() == bpe.backend.encode(text, add_special_tokens=False).ids


def test_encode_corpus_uses_int32_beyond_uint16() -> None:
    tokenizer = CharTokenizer([chr(0x10000 + i) for i in range(70_000)])
    ids = encode_corpus(tokenizer, chr(0x10000 + 69_999) + chr(0x10000))
    assert ids.dtype == np.int32 and ids.tolist() == [69_999, 0]


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_json_round_trip_encodes_identically(kind: str, char: CharTokenizer, bpe: BPETokenizer, text: str) -> None:
    tokenizer: Tokenizer = char if kind == "char" else bpe
    rebuilt = tokenizer_from_json(tokenizer.to_json())
    assert type(rebuilt) is type(tokenizer) and rebuilt.vocab_size == tokenizer.vocab_size
    sample = text[:20_000] + ODD
    assert rebuilt.encode(sample) == tokenizer.encode(sample) and rebuilt.to_json() == tokenizer.to_json()
    document = json.loads(tokenizer.to_json())
    assert (document["kind"], document["version"]) == (kind, 1)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"kind": "wordpiece", "version": 1}', r"unknown tokenizer kind 'wordpiece'"),
        ('{"kind": "char", "version": 2, "chars": ["a"]}', r"format version 2; this qkv reads versions 1 to 1"),
        ('{"kind": "char", "version": 1}', r'needs a "chars" list'),
        ('{"kind": "char", "version": 1, "chars": ["a", "a"]}', r"lists 'a' \(U\+0061\) twice"),
        ('{"kind": "bpe", "version": 1, "tokenizers": {"model": 3}}', r"unreadable Hugging Face tokenizer"),
        ('{"version": 1}', r'must be an object with "kind" and "version"'),
        ("not json", r"not valid JSON"),
    ],
)
def test_tokenizer_from_json_refuses_what_it_does_not_know(document: str, message: str) -> None:
    with pytest.raises(TokenizerError, match=message):
        tokenizer_from_json(document)


def test_train_tokenizer_dispatches_and_checks(text: str) -> None:
    assert isinstance(train_tokenizer("char", "abc"), CharTokenizer)
    assert train_tokenizer("bpe", text[:20_000], vocab_size=300).vocab_size == 300
    with pytest.raises(TokenizerError, match="do not pass one"):
        train_tokenizer("char", "abc", vocab_size=10)
    with pytest.raises(TokenizerError, match="unknown tokenizer kind 'word'"):
        train_tokenizer("word", "abc")  # type: ignore[arg-type]
    with pytest.raises(TokenizerError, match="empty text"):
        train_tokenizer("bpe", "")


@pytest.mark.parametrize("short", [True, False], ids=["encode", "encode_array"])
def test_bpe_refuses_text_that_is_not_unicode_with_a_tokenizer_error(bpe: BPETokenizer, short: bool) -> None:
    text = "abc \udcff def"  # a command-line byte 0xff, as Python carries it
    with pytest.raises(TokenizerError, match=r"^the text is not valid UTF-8 text: the byte 0xff at character 4"):
        bpe.encode(text) if short else bpe.encode_array(text * 10_000)
