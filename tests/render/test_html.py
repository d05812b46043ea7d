"""The HTML view: self-contained (no URL at all), its data is the trace exactly, and its script parses."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

import qkv.render
from qkv.data.metrics import head_metrics
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.render.html import MAX_PAGE_BYTES, show, static_text, trace_fragment, trace_html
from qkv.render.scale import head_scales

from .conftest import make_trace

EXTERNAL = re.compile(r"https?:|src\s*=|href\s*=|url\(|@import|//[a-z0-9.-]+\.[a-z]{2,}/", re.IGNORECASE)


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._in: tuple[str, dict[str, str | None]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = (tag, dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            tag, attrs = self._in
            if tag == "script":
                self.scripts.append((attrs, data))
            else:
                self.styles.append(data)
            self._in = None


def parse(document: str) -> Elements:
    elements = Elements()
    elements.feed(document)
    elements.close()
    return elements


def test_the_page_is_self_contained_with_no_url_of_any_kind(toy: AttentionTrace) -> None:
    document = trace_html(toy, layer=1, head=0)
    assert document.startswith("<!DOCTYPE html>") and document.rstrip().endswith("</html>")
    assert EXTERNAL.search(document) is None
    tags = {tag for tag, _ in parse(document).tags}
    assert not tags & {"link", "img", "iframe", "object", "embed"}


def test_the_embedded_data_is_the_trace_exactly_with_its_metrics(toy: AttentionTrace) -> None:
    elements = parse(trace_html(toy, layer=1, head=0))
    data = json.loads(next(text for attrs, text in elements.scripts if attrs.get("type") == "application/json"))
    assert data["encoding"] == "float32" and data["held"] == [[layer, head] for layer in range(2) for head in range(3)]
    weights = np.frombuffer(base64.b64decode(data["weights"]), dtype="<f4").reshape(2, 3, 7, 7)
    assert torch.equal(torch.from_numpy(weights.copy()), toy.weights)
    assert data["tokens"] == toy.labels and data["special"] == list(toy.special)
    assert (data["layers"], data["heads"], data["layer"], data["head"]) == ([0, 1], 3, 1, 0)
    metrics = head_metrics(toy)
    assert len(data["metrics"]) == 2 and len(data["metrics"][0]) == 3 + 1  # every head, then their mean
    assert data["metrics"][1][0][0] == pytest.approx(float(metrics.entropy[1, 0]), abs=1e-4)
    assert data["metrics"][0][2][4] == pytest.approx(float(metrics.sink_share[0, 2]), abs=1e-4)


def test_a_token_cannot_close_the_script_or_inject_markup() -> None:
    hostile = make_trace(("[CLS]", "</script><script>alert(1)</script>", "<b>&amp;", "[SEP]"), layers=1)
    document = trace_html(hostile)
    assert document.count("</script>") == 2  # the data's and the code's own
    assert "<b>" not in document and "alert(1)" in document  # inside the JSON, escaped


STATIC = Path(qkv.render.__file__).parent / "static"


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the view's script is checked with node (apt-get install nodejs)")
    return node


def data_of(document: str) -> str:
    return next(text for attrs, text in parse(document).scripts if attrs.get("type") == "application/json")


def test_the_inline_style_and_script_are_the_package_files(toy: AttentionTrace) -> None:
    elements = parse(trace_html(toy))
    css, js = (STATIC / "trace.css").read_text(encoding="utf-8"), (STATIC / "trace.js").read_text(encoding="utf-8")
    assert elements.styles == [css] and [text for attrs, text in elements.scripts if not attrs] == [js]
    assert static_text("trace.css") == css and static_text("trace.js") == js  # as importlib.resources reads them
    for text in (css, js):
        assert "</" not in text and EXTERNAL.search(text) is None  # inlined: nothing may close its element


def test_the_script_parses_as_a_classic_script() -> None:
    node = node_or_skip()
    result = subprocess.run([node, "--check", str(STATIC / "trace.js")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    code = (STATIC / "trace.js").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|export)\b", code, re.MULTILINE)  # a file:// page cannot load modules


def test_the_script_draws_each_views_own_weights_for_every_layer_and_head(toy: AttentionTrace) -> None:
    node = node_or_skip()
    other = make_trace(("[CLS]", "a", " dog", "[SEP]"), layers=1, heads=2)
    views = [(toy, 1, 0), (other, None, None)]
    stdin = json.dumps(
        {"script": static_text("trace.js"), "views": [data_of(trace_html(t, layer=l, head=h)) for t, l, h in views]}
    )
    runner = Path(__file__).with_name("run_trace_view.js")
    result = subprocess.run([node, str(runner)], input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [view["ready"] for view in shown] == [True, True]  # one script run set up both views
    for (trace, layer, head), view in zip(views, shown, strict=True):
        weights = trace.weights.double()  # (L, H, T, S)
        start = weights[trace.layer_index(layer)]
        start = start.mean(dim=0) if head is None else start[head]
        np.testing.assert_allclose(view["first"], start.flatten().numpy(), atol=5e-4)  # cells show 3 decimals
        assert len(view["shown"]) == len(trace.layers) * (trace.heads + 1)  # every layer and head is offered
        for drawn in view["shown"]:
            heads = weights[drawn["layer"]]  # (H, T, S)
            expected = heads.mean(dim=0) if drawn["head"] < 0 else heads[drawn["head"]]
            np.testing.assert_allclose(drawn["cells"], expected.flatten().numpy(), atol=5e-4)
            assert drawn["metrics"].startswith("entropy ") and "sink share" in drawn["metrics"]


def test_a_notebook_shows_a_compact_fragment_of_its_own(toy: AttentionTrace) -> None:
    fragment = show(toy)._repr_html_()
    assert str(show(toy)) == fragment == trace_fragment(toy)
    assert fragment.startswith('<div class="qkv-trace"') and "<html" not in fragment
    assert 'data-role="heatmap"' not in fragment and EXTERNAL.search(fragment) is None
    assert json.loads(data_of(str(show(toy, layer=0, head=2))))["layer"] == 0


def big_trace(layers: int, heads: int, tokens: int) -> AttentionTrace:
    """A causal trace of SmolLM2's shape (no special tokens: the first token is the sink)."""
    generator = torch.Generator().manual_seed(2)
    future = torch.ones(tokens, tokens, dtype=torch.bool).triu(diagonal=1)
    scores = torch.randn(layers, heads, tokens, tokens, generator=generator).masked_fill(future, float("-inf"))
    words = tuple(f" w{index}" for index in range(tokens))
    return AttentionTrace(torch.softmax(scores, dim=-1), words, tuple(range(layers)), "".join(words), "big")


def test_a_big_trace_stays_under_the_byte_cap_and_says_what_it_holds() -> None:
    trace = big_trace(30, 9, 244)  # SmolLM2 on 244 tokens: 64 MB of float32 weights
    for view in (str(show(trace)), trace_html(trace)):
        assert len(view.encode("utf-8")) <= MAX_PAGE_BYTES
        data = json.loads(data_of(view))
        held = sorted({layer for layer, _ in data["held"]})
        assert data["encoding"] == "uint8" and 29 in held and 0 not in held  # the last layer and its neighbours
        assert held == list(range(30 - len(held), 30)) and len(data["held"]) == 9 * len(held)
        weights = np.frombuffer(base64.b64decode(data["weights"]), dtype=np.uint8).reshape(len(held), 9, 244, 244)
        np.testing.assert_allclose(weights / 255, trace.weights[held].numpy(), atol=1 / 510 + 1e-6)
        assert f"This view holds layers {held[0]}…29 of 0…29 (weights rounded to 1/255)" in view


def test_a_view_holding_some_layers_offers_and_draws_only_those() -> None:
    node = node_or_skip()
    trace = big_trace(6, 3, 40)
    page = trace_html(trace, layer=2, head=1, max_bytes=45_000)
    data = json.loads(data_of(page))
    assert len(page.encode("utf-8")) <= 45_000 and data["encoding"] == "uint8" and 0 < len(data["held"]) < 6 * 3
    stdin = json.dumps({"script": static_text("trace.js"), "views": [json.dumps(data)]})
    runner = Path(__file__).with_name("run_trace_view.js")
    result = subprocess.run([node, str(runner)], input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (view,) = json.loads(result.stdout)
    layers = sorted({layer for layer, _ in data["held"]})
    assert 2 in layers and view["offered"] == [[layer, head] for layer in layers for head in (-1, 0, 1, 2)]
    for drawn in view["shown"]:
        heads = trace.weights[drawn["layer"]].double()  # (H, T, S)
        expected = heads.mean(dim=0) if drawn["head"] < 0 else heads[drawn["head"]]
        np.testing.assert_allclose(drawn["cells"], expected.flatten().numpy(), atol=1 / 510 + 5e-4)
        scale = float(head_scales(trace, expected))  # the JavaScript shades against the same scale as Python
        sinks = torch.tensor(trace.sinks)[None, :].expand(40, 40).flatten()  # (T·S,)
        levels = torch.tensor(drawn["levels"])
        shaded = torch.where(sinks, expected.flatten(), expected.flatten() / scale).clamp(max=1.0)
        np.testing.assert_allclose(levels.numpy(), shaded.numpy(), atol=0.02)  # uint8 weights, 3 decimals


def test_a_cap_too_small_for_one_head_says_how_many_tokens_fit() -> None:
    with pytest.raises(InputError, match=r"one head of 20 tokens needs .* show at most \d+ tokens, or raise max_bytes"):
        trace_html(big_trace(1, 2, 20), max_bytes=len(trace_html(big_trace(1, 2, 1))) + 100)


def test_without_javascript_the_view_shows_its_strongest_arrows_and_metrics(toy: AttentionTrace) -> None:
    document = trace_html(toy, layer=1, head=0)
    static = document[document.index('<div class="qkv-static"') : document.index('<div class="qkv-controls"')]
    assert "needs JavaScript" in static and "<td>Riley</td><td>⇒</td><td>dog</td><td>0.37</td>" in static
    assert static.count("<tr>") == 12 + 1 + 3 + 1  # the 12 strongest arrows; a header, heads 0–2 and their mean
    css = static_text("trace.css")
    assert ".qkv-trace.qkv-live .qkv-static { display: none; }" in css and "prefers-color-scheme: dark" in css


def test_a_head_out_of_range_is_refused(toy: AttentionTrace) -> None:
    with pytest.raises(InputError, match=r"head 3 is out of range; this model has heads 0…2"):
        trace_html(toy, head=3)
