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
from qkv.render.html import show, static_text, trace_fragment, trace_html

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
        assert len(view["shown"]) == len(trace.layers) * (trace.heads + 1)
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


def test_a_page_too_heavy_for_a_browser_says_how_many_tokens_fit(
    toy: AttentionTrace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qkv.render import html

    monkeypatch.setattr(html, "MAX_PAGE_WEIGHTS", 4 * 2 * 3 * 5**2)
    with pytest.raises(InputError, match=r"7 tokens × 2 layers × 3 heads .* show at most 5 tokens"):
        trace_html(toy)


def test_a_head_out_of_range_is_refused(toy: AttentionTrace) -> None:
    with pytest.raises(InputError, match=r"head 3 is out of range; this model has heads 0…2"):
        trace_html(toy, head=3)
