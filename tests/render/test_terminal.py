"""The terminal renderer: a snapshot, the width it is given, colour only when asked."""

from __future__ import annotations

import re

import pytest
import torch

from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.render.terminal import render_terminal

from .conftest import make_trace

ANSI = re.compile(r"\x1b\[[0-9;]*m")

SNAPSHOT = """\
model toy · layer 1 · head 0 of 3 · 7 tokens
row: a token; column: the token it attends to; darker: more, up to the head's
  scale (the 99th percentile of its weights outside the sinks)
          0 1 2 3 4 5 6
0 [CLS] │▒▒▒▒▒▒░░▒▒▒▒ ·
1 Evan  │ ·▒▒░░▒▒▒▒▒▒▒▒
2 's    │ ·▒▒░░▓▓░░▓▓░░
3 dog   │░░▒▒▒▒▓▓▒▒░░░░
4 Riley │▒▒░░░░██░░░░ ·
5 runs  │▒▒▒▒░░░░██░░░░
6 [SEP] │░░░░░░░░▓▓▓▓░░
         ·░▒▓█ 0 … 0.37, sink columns 0 … 1
strongest arrows (without self-attention and the sinks [CLS] [SEP]):
  Riley ⇒ dog    0.37
  runs  ⇒ Riley  0.28
  's    ⇒ dog    0.27
entropy 2.43 bits · mean distance 2.3 tokens · asymmetry ‖A − Aᵀ‖ 1.10 (0.63 of
  its maximum) · sink share 0.36 (to [CLS] [SEP])"""


def test_one_head_renders_as_the_snapshot(toy: AttentionTrace) -> None:
    assert render_terminal(toy, layer=1, head=0, width=80, top=3) == SNAPSHOT


@pytest.mark.parametrize("width", [40, 60, 100])
@pytest.mark.parametrize("color", [False, True])
def test_every_line_fits_the_width_and_colour_is_only_there_when_asked(width: int, color: bool) -> None:
    trace = make_trace(tuple(f" word{i}" for i in range(45)), layers=1)
    text = render_terminal(trace, head=0, width=width, color=color)
    assert ("\x1b[48;5;" in text) == color
    assert all(len(ANSI.sub("", line)) <= width for line in text.splitlines())


def test_a_heatmap_wider_than_the_terminal_says_what_it_left_out() -> None:
    trace = make_trace(tuple(f" w{i}" for i in range(45)), layers=1)
    text = render_terminal(trace, width=40)
    assert "(columns 32…44 do not fit in 40 columns:" in text  # 40 − "44 w44 │" leaves 32 one-character cells
    assert "mean of 3 heads" in text.splitlines()[0]


def test_a_sink_does_not_wash_out_the_heatmap() -> None:
    weights = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.9, 0.06, 0.04]])[None, None]  # (L, H, T, S)
    text = render_terminal(AttentionTrace(weights, ("a", " b", " c"), (0,), "a b c"), width=80, color=False)
    rows = [line.split("│")[1] for line in text.splitlines() if "│" in line]
    assert rows == ["██ · ·", "████ ·", "██▓▓▒▒"]  # 0.06 and 0.04 against 0.1, the largest outside the sink
    assert "0 … 0.10, sink columns 0 … 1" in text


def test_a_causal_trace_without_special_tokens_has_its_first_token_as_the_sink() -> None:
    future = torch.ones(3, 3, dtype=torch.bool).triu(diagonal=1)
    weights = torch.softmax(torch.randn(1, 2, 3, 3).masked_fill(future, float("-inf")), dim=-1)  # (L, H, T, S)
    text = render_terminal(AttentionTrace(weights, ("a", "b", "c"), (0,), "abc"), width=200)
    assert "strongest arrows (without self-attention and the sinks a, the first token):" in text
    assert re.search(r"sink share 0\.\d\d \(to a, the first token\)$", text)


def test_a_bidirectional_trace_without_special_tokens_has_no_sink() -> None:
    text = render_terminal(make_trace(("a", "b", "c"), layers=1), width=200)
    assert "strongest arrows (without self-attention):" in text and text.endswith(" · no sink tokens")


def test_a_layer_or_head_the_trace_lacks_names_what_it_holds(toy: AttentionTrace) -> None:
    with pytest.raises(InputError, match=r"layer 7 is not in this trace; it holds layers 0…1"):
        render_terminal(toy, layer=7)
    with pytest.raises(InputError, match=r"head 3 is out of range; this model has heads 0…2"):
        render_terminal(toy, layer=0, head=3)
