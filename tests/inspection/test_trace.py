"""Traces of a text through a model: every family, saved and loaded as JSON, and words folded from tokens."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import torch

import qkv
from qkv.attention import IMPLEMENTATIONS, Implementation, implementation
from qkv.data.trace import AttentionTrace, token_labels, word_spans, word_weights
from qkv.errors import InputError
from qkv.inspection.trace import trace
from qkv.render.table import word_arrows
from qkv.text import CharTokenizer

KernelCalls = Callable[[], AbstractContextManager[Counter[str]]]  # the conftest's kernel_calls
SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"


def char_model(family: str = "tiny", **fields: Any) -> qkv.Model:
    """A small random model with a character tokenizer, behind the handle qkv.load gives every model."""
    tokenizer = CharTokenizer.train(SENTENCE)
    torch.manual_seed(0)
    config = qkv.preset(family, vocab_size=tokenizer.vocab_size, context=64, width=32, layers=2, heads=4, **fields)
    return qkv.Model(qkv.Transformer(config), tokenizer)


def wordpiece() -> Any:
    """A small BERT-style WordPiece tokenizer, built in memory, behind qkv's PretrainedTokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    from qkv.pretrained import PretrainedTokenizer

    words = ["evan", "'", "s", "dog", "riley", "is", "so", "hyper", "##active", ",", "she", "never", "stops"]
    vocab = {token: index for index, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words, "mov", "##ing"])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    backend.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    return PretrainedTokenizer(backend)


@pytest.mark.parametrize(
    ("family", "fields"),
    [("bert", {}), ("gpt2", {}), ("llama", {"kv_heads": 2})],
    ids=["bert (bidirectional, post-norm)", "gpt2 (causal, learned positions)", "llama (RoPE, grouped-query)"],
)
def test_every_family_traces_rows_that_sum_to_one_and_hide_the_future_when_causal(
    family: str, fields: dict[str, Any]
) -> None:
    tokenizer = wordpiece()
    torch.manual_seed(0)
    config = qkv.preset(family, vocab_size=tokenizer.vocab_size, context=64, width=32, layers=2, heads=4, **fields)
    result = trace(qkv.Model(qkv.Transformer(config), tokenizer, name=family), SENTENCE)
    T = len(result.tokens)
    assert result.weights.shape == (2, 4, T, T) and result.layers == (0, 1) and result.model == family
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    assert result.special == (True,) + (False,) * (T - 2) + (True,)
    assert "".join(token for token, special in zip(result.tokens, result.special, strict=True) if not special) == (
        SENTENCE
    )
    torch.testing.assert_close(result.weights.sum(-1), torch.ones(2, 4, T))
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert (result.weights[..., future] == 0).all() == config.causal


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_a_trace_runs_the_exact_path_under_either_setting_and_holds_its_weights(
    name: Implementation, kernel_calls: KernelCalls
) -> None:
    model = char_model("llama", kv_heads=2)
    attention = model.model.blocks[1].attention
    inputs: list[torch.Tensor] = []
    handle = attention.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    with implementation(name), kernel_calls() as calls:
        result = trace(model, SENTENCE)
    handle.remove()
    assert calls == {"exact": 2}  # every captured layer took the exact path, and nothing ran twice
    _, weights = attention.attend(inputs[0], need_weights=True)  # the layer's own exact weights for its input
    assert weights is not None
    assert torch.equal(result.weights[1], weights[0])


def test_tracing_leaves_the_models_output_and_training_mode_unchanged() -> None:
    handle = char_model()
    model = handle.model
    ids = torch.tensor([handle.encode(SENTENCE)])
    model.eval()
    before = model(ids)
    model.train()
    trace(handle, SENTENCE)
    assert model.training
    assert torch.equal(model.eval()(ids), before)


def test_a_trace_holds_one_layers_weights_per_captured_layer_with_the_tokens() -> None:
    result = trace(char_model(), SENTENCE, layers=[1], name="mine")
    assert result.weights.shape == (1, 4, len(SENTENCE), len(SENTENCE)) and result.model == "mine"
    assert "".join(result.tokens) == SENTENCE and not any(result.special)
    lines = word_arrows(result, layer=1)
    assert len(lines) == 1 + 10 and lines[3].split()[:2] == ["Riley", "⇒"]
    with pytest.raises(InputError, match=r"layer 0 is not in this trace; it holds layer 1"):
        result.head_weights(0, 0)
    with pytest.raises(InputError, match=r"head 4 is out of range; this model has heads 0…3"):
        result.head_weights(1, 4)


def test_tracing_an_empty_or_too_long_text_is_a_clear_error() -> None:
    tokenizer = CharTokenizer.train(SENTENCE)
    model = qkv.Model(qkv.Transformer(qkv.preset("tiny", vocab_size=tokenizer.vocab_size, context=16)), tokenizer)
    with pytest.raises(InputError, match="empty"):
        trace(model, "  ")
    with pytest.raises(InputError, match=f"the text is {len(SENTENCE)} tokens long; this model reads at most 16"):
        trace(model, SENTENCE)


def test_a_trace_too_big_to_hold_says_how_many_tokens_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    trace_module = sys.modules["qkv.inspection.trace"]

    model = char_model()
    monkeypatch.setattr(trace_module, "MAX_TRACE_BYTES", 4 * 2 * 4 * 20**2)  # 2 layers × 4 heads × 20² tokens
    with pytest.raises(InputError, match=r"58 tokens through 2 layers × 4 heads .* trace at most 20 tokens"):
        trace(model, SENTENCE)
    assert trace(model, SENTENCE[:28], layers=[0]).weights.shape[0] == 1  # one layer: 28 tokens fit


def test_a_trace_survives_a_json_round_trip_exactly(tmp_path: Path) -> None:
    tokenizer = wordpiece()
    config = qkv.preset("bert", vocab_size=tokenizer.vocab_size, context=64, width=32, layers=2, heads=4)
    original = trace(qkv.Model(qkv.Transformer(config), tokenizer, name="bert"), SENTENCE, layers=[1])
    loaded = AttentionTrace.load(original.save(tmp_path / "trace.json"))
    assert torch.equal(loaded.weights, original.weights) and loaded.weights.dtype == torch.float32
    assert (loaded.tokens, loaded.special, loaded.layers, loaded.text, loaded.model) == (
        original.tokens,
        original.special,
        original.layers,
        original.text,
        original.model,
    )
    assert json.loads((tmp_path / "trace.json").read_text())["format"] == "qkv-attention-trace"
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "trace.json").stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "is not JSON"),
        ('{"format": "something else"}', "not a qkv attention trace"),
        ('{"format": "qkv-attention-trace", "version": 99}', "version 99; this qkv reads version 1"),
        ('{"format": "qkv-attention-trace", "version": 1, "weights": {}}', "damaged"),
    ],
)
def test_a_file_that_is_not_a_trace_is_named_in_one_clear_error(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(document)
    with pytest.raises(InputError, match=message):
        AttentionTrace.load(path)


def test_weights_that_do_not_fit_the_tokens_are_refused() -> None:
    with pytest.raises(InputError, match="3 tokens for weights"):
        AttentionTrace(torch.ones(1, 1, 2, 2) / 2, ("a", "b", "c"), (0,), "abc")


def test_token_labels_are_readable() -> None:
    assert token_labels(["[CLS]", "Evan", " dog", " ", "\n", "a\nb"]) == ["[CLS]", "Evan", "dog", "␣", "⏎", "a⏎b"]


def test_word_spans_group_character_tokens_into_the_sentences_words() -> None:
    spans = word_spans(list(SENTENCE))
    assert [word for word, _ in spans] == SENTENCE.replace(",", "").split()
    assert spans[1] == ("dog", [7, 8, 9])


def test_word_spans_follow_multi_character_tokens_and_skip_special_tokens() -> None:
    assert word_spans(["Ev", "an's", " d", "og"]) == [("Evan's", [0, 1]), ("dog", [2, 3])]
    assert word_spans(["[CLS]", "dog", "[SEP]"], [True, False, True]) == [("dog", [1])]


def test_word_weights_sum_token_weights_over_keys_and_average_over_queries() -> None:
    tokens = ["ab", " ", "c", "d"]  # words: "ab" = token 0, "cd" = tokens 2, 3
    weights = torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.2, 0.3, 0.5, 0.0], [0.1, 0.1, 0.4, 0.4]]
    )  # (T, S)
    words, folded = word_weights(weights, tokens)
    assert words == ["ab", "cd"]
    expected = torch.tensor([[1.0, 0.0], [(0.2 + 0.1) / 2, (0.5 + 0.8) / 2]])
    torch.testing.assert_close(folded, expected)
