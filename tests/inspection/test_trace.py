"""Traces of a text through a model, and words folded from tokens."""

from __future__ import annotations

import pytest
import torch

import qkv
from qkv.errors import InputError
from qkv.inspection.trace import trace, word_spans, word_weights
from qkv.render.table import word_arrows
from qkv.text import CharTokenizer

SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"


def test_word_spans_group_character_tokens_into_the_sentences_words() -> None:
    spans = word_spans(list(SENTENCE))
    assert [word for word, _ in spans] == SENTENCE.replace(",", "").split()
    assert spans[1] == ("dog", [7, 8, 9])


def test_word_spans_follow_multi_character_tokens() -> None:
    assert word_spans(["Ev", "an's", " d", "og"]) == [("Evan's", [0, 1]), ("dog", [2, 3])]


def test_word_weights_sum_token_weights_over_keys_and_average_over_queries() -> None:
    tokens = ["ab", " ", "c", "d"]  # words: "ab" = token 0, "cd" = tokens 2, 3
    weights = torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.2, 0.3, 0.5, 0.0], [0.1, 0.1, 0.4, 0.4]]
    )  # (T, S)
    words, folded = word_weights(weights, tokens)
    assert words == ["ab", "cd"]
    expected = torch.tensor([[1.0, 0.0], [(0.2 + 0.1) / 2, (0.5 + 0.8) / 2]])
    torch.testing.assert_close(folded, expected)


def test_a_trace_holds_one_layers_weights_per_captured_layer_with_the_tokens() -> None:
    tokenizer = CharTokenizer.train(SENTENCE)
    torch.manual_seed(0)
    model = qkv.Transformer(qkv.preset("tiny", vocab_size=tokenizer.vocab_size))
    result = trace(model, tokenizer, SENTENCE, layers=[1])
    assert result.weights.shape == (1, 4, len(SENTENCE), len(SENTENCE))
    assert "".join(result.tokens) == SENTENCE
    torch.testing.assert_close(result.weights.sum(-1), torch.ones(1, 4, len(SENTENCE)))
    lines = word_arrows(result, layer=1)
    assert len(lines) == 1 + 10 and lines[3].split()[:2] == ["Riley", "⇒"]


def test_tracing_an_empty_or_too_long_text_is_a_clear_error() -> None:
    tokenizer = CharTokenizer.train(SENTENCE)
    model = qkv.Transformer(qkv.preset("tiny", vocab_size=tokenizer.vocab_size, context=16))
    with pytest.raises(InputError, match="empty"):
        trace(model, tokenizer, "")
    with pytest.raises(InputError, match="at most 16"):
        trace(model, tokenizer, SENTENCE)
