"""How a trace shows itself: one short repr whatever its size, and one definition of its sink tokens."""

from __future__ import annotations

import torch

from qkv.data.metrics import head_metrics
from qkv.data.trace import AttentionTrace


def causal(weights: torch.Tensor) -> torch.Tensor:
    T = weights.shape[-1]
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    return torch.softmax(weights.masked_fill(future, float("-inf")), dim=-1)


def test_the_repr_of_a_big_trace_and_its_metrics_is_one_short_line() -> None:
    T = 300
    text = "Evan's dog Riley is so hyperactive, she never stops moving. " * 40
    trace = AttentionTrace(torch.rand(30, 9, T, T), tuple("x" * T), tuple(range(30)), text, "smollm2")
    shown = repr(trace)
    assert shown == (
        "AttentionTrace(model='smollm2', tokens=300, layers=0…29, heads=9, text=\"Evan's dog Riley is so…\")"
    )
    metrics = repr(head_metrics(trace))
    assert len(shown) < 200 and len(metrics) < 200 and "\n" not in metrics and "tensor" not in metrics
    assert metrics.startswith("HeadMetrics(layers=0…29, heads=9, entropy=")


def test_special_tokens_are_sinks_and_so_is_a_causal_traces_first_token() -> None:
    bidirectional = torch.softmax(torch.randn(1, 2, 4, 4), dim=-1)  # (L, H, T, S)
    bert = AttentionTrace(bidirectional, ("[CLS]", "a", " b", "[SEP]"), (0,), "a b", special=(True, False, False, True))
    assert bert.sinks == (True, False, False, True) and bert.sink_names == "[CLS] [SEP]" and not bert.causal
    words = AttentionTrace(bidirectional, ("riley", "is", "a", "dog"), (0,), "riley is a dog")
    assert words.sinks == (False,) * 4 and words.sink_names == "none"  # the tour's word traces: no sink
    gpt = AttentionTrace(causal(torch.randn(1, 2, 4, 4)), ("The", " dog", " runs", "."), (0,), "The dog runs.")
    assert gpt.causal and gpt.sinks == (True, False, False, False) and gpt.sink_names == "The, the first token"
    chat = AttentionTrace(
        causal(torch.randn(1, 2, 3, 3)), ("<|im_start|>", "user", "hi"), (0,), "user hi", special=(True, False, False)
    )
    assert chat.sinks == (True, False, False) and chat.sink_labels == ["<|im_start|>"]
