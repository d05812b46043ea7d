"""MiniLM's trace of the article's sentence and the built tours, made once for the article's tests."""

from __future__ import annotations

import pytest

import qkv
from qkv.article.tour import make_tour
from qkv.article.tour_base import Tour
from qkv.article.vectors import SENTENCE
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
