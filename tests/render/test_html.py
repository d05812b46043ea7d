"""The HTML view: self-contained (no URL at all), its data is the trace exactly, its script is the explorer's
modules inlined, and run in node against a stand-in DOM it draws the trace's own weights through viridis."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch

import qkv.web
from qkv.data.metrics import head_metrics
from qkv.data.scale import head_scales
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.render.html import MAX_PAGE_BYTES, show, trace_fragment, trace_html, view_script, view_style
from qkv.web import module_order

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
    assert '<h1 class="qkv-title">toy' in document and "<h1" not in trace_fragment(toy)  # a page's title, not a cell's


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


STATIC = Path(qkv.web.__file__).parent / "static"
VIRIDIS = np.round(matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(int)  # (256, 3)
GREY_LOW, GREY_HIGH = 40, 230  # a sink column's grey at 0 and at 1 (heatmap.js)


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the view's script is checked with node (apt-get install nodejs)")
    return node


def data_of(document: str) -> str:
    return next(text for attrs, text in parse(document).scripts if attrs.get("type") == "application/json")


def test_the_inline_style_is_the_package_file_and_the_script_carries_the_explorers_modules(toy: AttentionTrace) -> None:
    elements = parse(trace_html(toy))
    css = (STATIC / "trace_view.css").read_text(encoding="utf-8")
    assert elements.styles == [css] == [view_style()]
    (script,) = [text for attrs, text in elements.scripts if not attrs]
    assert script == view_script()
    modules = module_order("trace_view.js")
    assert {"viridis.js", "heatmap.js", "grid.js", "lines.js"} < set(modules)  # what the explorer draws with
    position = 0
    for name in modules:  # every line of each module, in order, but for its imports and the word export
        source = re.sub(r"^import [^;]*;", "", (STATIC / name).read_text(encoding="utf-8"), flags=re.MULTILINE)
        for line in filter(str.strip, source.splitlines()):
            found = script.find(line.removeprefix("export "), position)
            assert found >= 0, f"{name}: {line!r} is not in the page's script"
            position = found + len(line.removeprefix("export "))
    for text in (css, script):
        assert "</" not in text and EXTERNAL.search(text) is None  # inlined: nothing may close its element


def test_the_script_parses_as_a_classic_script(tmp_path: Path) -> None:
    node = node_or_skip()
    path = tmp_path / "view.js"
    path.write_text(view_script(), encoding="utf-8")
    result = subprocess.run([node, "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not re.search(r"^\s*(import|export)\b", view_script(), re.MULTILINE)  # a file:// page cannot load modules


def run_views(payloads: list[str], token: int) -> list[dict[str, Any]]:
    """The view script run in node on bare views of ``payloads`` (tests/render/run_trace_view.js)."""
    node = node_or_skip()
    stdin = json.dumps({"script": view_script(), "views": payloads, "token": token})
    runner = Path(__file__).with_name("run_trace_view.js")
    result = subprocess.run([node, str(runner)], input=stdin, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    shown: list[dict[str, Any]] = json.loads(result.stdout)
    return shown


def assert_drawn_through_viridis(pixels: list[int], weights: torch.Tensor, trace: AttentionTrace) -> None:
    """``pixels`` (T·S RGB triples) are ``weights (T, S)`` shaded against the head's scale as Python computes it:
    viridis up to the scale, sink columns grey against 1 (either neighbour of a level half-way between two)."""
    scale = float(head_scales(trace, weights))
    drawn = np.array(pixels).reshape(*weights.shape, 3)  # (T, S, 3)
    sinks = list(trace.sinks)
    for (t, s), w in np.ndenumerate(weights.double().numpy()):
        if sinks[s]:
            level = GREY_LOW + (GREY_HIGH - GREY_LOW) * min(1.0, w)
            allowed = [[g, g, g] for g in {math.floor(level), math.ceil(level)}]
        else:
            level = 255 * min(1.0, w / scale)
            allowed = [VIRIDIS[i].tolist() for i in {math.floor(level), math.ceil(level)}]
        assert drawn[t, s].tolist() in allowed, f"cell {t}, {s}: {drawn[t, s].tolist()} for weight {w:.4f}"


def test_the_script_draws_each_views_own_weights_for_every_layer_and_head(toy: AttentionTrace) -> None:
    other = make_trace(("[CLS]", "a", " dog", "[SEP]"), layers=1, heads=2)
    views = [(toy, 1, 0), (other, None, None)]
    shown = run_views([data_of(trace_html(t, layer=l, head=h)) for t, l, h in views], token=2)
    assert [(view["ready"], view["live"]) for view in shown] == [(True, True)] * 2  # one run set up both views
    for (trace, layer, head), view in zip(views, shown, strict=True):
        weights = trace.weights.double()  # (L, H, T, S)
        T = len(trace.tokens)
        start = weights[trace.layer_index(layer)]
        start = start.mean(dim=0) if head is None else start[head]
        first = view["first"]
        assert (first["layer"], first["head"]) == (trace.layer_index(layer), -1 if head is None else head)
        assert_drawn_through_viridis(view["first"]["pixels"], start, trace)
        assert len(view["shown"]) == len(trace.layers) * (trace.heads + 1)  # every layer and head is offered
        for drawn in view["shown"]:
            heads = weights[drawn["layer"]]  # (H, T, S)
            expected = heads.mean(dim=0) if drawn["head"] < 0 else heads[drawn["head"]]
            assert (drawn["width"], drawn["height"]) == (T, T)  # one pixel per cell
            assert_drawn_through_viridis(drawn["pixels"], expected, trace)
            assert drawn["metrics"].startswith("entropy ") and "sink share" in drawn["metrics"]
            # Hovering token 2 on the left: its strongest weights as lines from it, 10 px wide for a weight of 1.
            lines = drawn["hovered"]["lines"]
            row = expected[2]
            assert {line["from"] for line in lines} == {2} and len(lines) == min(32, T)
            assert sorted(line["to"] for line in lines) == sorted(torch.argsort(row, descending=True)[:32].tolist())
            for line in lines:
                assert line["width"] == pytest.approx(10 * float(row[line["to"]]), abs=1e-5)
            assert drawn["hovered"]["hover"].startswith(f"{trace.labels[2]} attends most to")
            # Nothing hovered: the head's lines of at least 1% of its scale, grey ones to and from the sinks.
            scale = float(head_scales(trace, expected))
            strong = {(t, s) for (t, s), w in np.ndenumerate(expected.numpy()) if w >= 0.01 * scale}
            assert {(line["from"], line["to"]) for line in drawn["overview"]} == strong
            for line in drawn["overview"]:
                sink = trace.sinks[line["from"]] or trace.sinks[line["to"]]
                assert line["kind"] == ("overview sink" if sink else "overview")
    # The grid: every head of every layer, each thumbnail its head's heatmap (the texts are under 64 tokens).
    grid = shown[0]["grid"]
    assert [(cell["layer"], cell["head"]) for cell in grid] == [(layer, h) for layer in (0, 1) for h in range(3)]
    for cell in grid:
        assert_drawn_through_viridis(cell["pixels"], toy.weights[cell["layer"], cell["head"]], toy)


def test_a_notebook_shows_a_compact_fragment_of_its_own(toy: AttentionTrace) -> None:
    fragment = show(toy)._repr_html_()
    assert str(show(toy)) == fragment == trace_fragment(toy)
    assert fragment.startswith('<div class="qkv-trace"') and "<html" not in fragment
    assert 'data-role="heatmap"' not in fragment and 'data-role="grid"' not in fragment
    assert EXTERNAL.search(fragment) is None
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
    trace = big_trace(6, 3, 40)
    whole = len(trace_html(trace, layer=2, head=1).encode("utf-8"))  # every weight as float32: 153,600 of base64
    cap = whole - 153_600 + 3 * 6_400 + 3_000  # room for three layers of uint8 (3 × 40 × 40 bytes in base64)
    page = trace_html(trace, layer=2, head=1, max_bytes=cap)
    data = json.loads(data_of(page))
    assert len(page.encode("utf-8")) <= cap and data["encoding"] == "uint8" and 3 <= len(data["held"]) < 6 * 3
    (view,) = run_views([json.dumps(data)], token=5)
    layers = sorted({layer for layer, _ in data["held"]})
    assert 2 in layers and view["offered"] == [[layer, head] for layer in layers for head in (-1, 0, 1, 2)]
    held = torch.from_numpy(np.frombuffer(base64.b64decode(data["weights"]), dtype=np.uint8).copy())
    held = held.reshape(len(layers), 3, 40, 40).double() / 255  # (L', H, T, S): what the view holds
    np.testing.assert_allclose(held.numpy(), trace.weights[layers].numpy(), atol=1 / 510 + 1e-6)
    for drawn in view["shown"]:
        heads = held[layers.index(drawn["layer"])]  # (H, T, S)
        expected = heads.mean(dim=0) if drawn["head"] < 0 else heads[drawn["head"]]
        assert_drawn_through_viridis(drawn["pixels"], expected, trace)  # against the same scale as Python's
    assert {(cell["layer"], cell["head"]) for cell in view["grid"]} == {(la, h) for la in layers for h in range(3)}


def test_a_view_of_one_head_has_no_grid() -> None:
    trace = big_trace(2, 2, 30)
    whole = len(trace_html(trace).encode("utf-8"))  # every weight as float32: 19,200 of base64
    page = trace_html(trace, layer=1, head=0, max_bytes=whole - 19_200 + 1_200 + 3_000)  # room for one head of uint8
    data = json.loads(data_of(page))
    assert data["held"] == [[1, 0]]
    (view,) = run_views([json.dumps(data)], token=0)
    assert view["grid"] == [] and view["offered"] == [[1, 0]]


def test_a_cap_too_small_for_one_head_says_how_many_tokens_fit() -> None:
    with pytest.raises(InputError, match=r"one head of 20 tokens needs .* show at most \d+ tokens, or raise max_bytes"):
        trace_html(big_trace(1, 2, 20), max_bytes=len(trace_html(big_trace(1, 2, 1))) + 100)


def test_without_javascript_the_view_shows_its_strongest_arrows_and_metrics(toy: AttentionTrace) -> None:
    document = trace_html(toy, layer=1, head=0)
    static = document[document.index('<div class="qkv-static"') : document.index('<div class="qkv-controls"')]
    assert "needs JavaScript" in static and "<td>Riley</td><td>⇒</td><td>dog</td><td>0.37</td>" in static
    assert static.count("<tr>") == 12 + 1 + 3 + 1  # the 12 strongest arrows; a header, heads 0–2 and their mean
    css = view_style()
    assert ".qkv-trace.qkv-live .qkv-static { display: none; }" in css and "prefers-color-scheme: dark" in css


def test_a_head_out_of_range_is_refused(toy: AttentionTrace) -> None:
    with pytest.raises(InputError, match=r"head 3 is out of range; this model has heads 0…2"):
        trace_html(toy, head=3)
