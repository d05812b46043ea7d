"""MiniLM's trace of the article's sentence, the built tours, and MiniLM's first layer recomputed with NumPy,
made once for the article's tests."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from safetensors import safe_open

import qkv
from qkv.article.tour import make_tour
from qkv.article.tour_base import Tour
from qkv.article.vectors import SENTENCE, default_database, split_words
from qkv.data.registry import find_packaged
from qkv.data.trace import AttentionTrace


@pytest.fixture(scope="session")
def minilm_trace() -> AttentionTrace:
    """The sentence through the whole of MiniLM, as ``qkv tour`` reads it for Part 4's stacking."""
    return qkv.trace(qkv.load("minilm"), SENTENCE)


@pytest.fixture(scope="session")
def tour_en(minilm_trace: AttentionTrace) -> Tour:
    return make_tour(lang="en", model_trace=minilm_trace)


@pytest.fixture(scope="session")
def tour_es(minilm_trace: AttentionTrace) -> Tour:
    return make_tour(lang="es", model_trace=minilm_trace)


@dataclass(frozen=True)
class NumpyLayer:
    """MiniLM's first layer on the sentence's words, without positions, computed here with NumPy only."""

    words: list[str]
    embeddings: np.ndarray  # (T, D): the words' raw embeddings (qkv's, themselves checked against NumPy)
    queries: np.ndarray  # (H, T, K)
    keys: np.ndarray  # (H, T, K)
    weights: np.ndarray  # (H, T, S): softmax(q · k / √K)

    def index(self, word: str) -> int:
        return self.words.index(word)


def numpy_first_layer(words: list[str]) -> NumpyLayer:
    """``LayerNorm(embedding + token type)`` projected to queries and keys, cut into heads, softmaxed."""
    _, model_dir = find_packaged("minilm")
    config = json.loads((model_dir / "config.json").read_text())
    prefix = "encoder.layer.0.attention.self"
    names = [f"embeddings.LayerNorm.{p}" for p in ("weight", "bias")] + ["embeddings.token_type_embeddings.weight"]
    names += [f"{prefix}.{n}.{p}" for n in ("query", "key") for p in ("weight", "bias")]
    with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as f:
        gamma, beta, types, wq, bq, wk, bk = (f.get_tensor(name).astype(np.float64) for name in names)
    embeddings = default_database().embeddings(words).numpy()
    summed = embeddings + types[0]
    mean, var = summed.mean(axis=1, keepdims=True), summed.var(axis=1, keepdims=True)
    inputs = (summed - mean) / np.sqrt(var + config["layer_norm_eps"]) * gamma + beta
    heads = config["num_attention_heads"]

    def split(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(words), heads, -1).transpose(1, 0, 2)  # (T, D) → (H, T, K)

    queries, keys = split(inputs @ wq.T + bq), split(inputs @ wk.T + bk)
    scores = queries @ keys.transpose(0, 2, 1) / np.sqrt(queries.shape[-1])  # (H, T, S)
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return NumpyLayer(words, embeddings, queries, keys, exp / exp.sum(axis=-1, keepdims=True))


@pytest.fixture(scope="session")
def numpy_layer() -> NumpyLayer:
    return numpy_first_layer(split_words(SENTENCE))
