"""PNG and SVG pictures of a trace: the size they promise, SVG that parses with the tokens as text, a layout
whose title never covers a panel, colour bars, sinks as the trace defines them, and long texts cut with a note."""

from __future__ import annotations

import re
import string
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import torch

from qkv.data.scale import PERCENTILE, head_scales
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.render.figures import (
    ARC_WIDTH_LIMITS,
    FigureText,
    arc_diagram,
    arc_figure,
    arc_inches,
    grid_inches,
    heatmap_figure,
    heatmap_grid,
    write_arc_diagram,
    write_heatmap_grid,
)

from .conftest import make_trace

SVG = "{http://www.w3.org/2000/svg}"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def svg_texts(document: bytes | str) -> list[str]:
    root = ElementTree.fromstring(document)
    return ["".join(element.itertext()) for element in root.iter(f"{SVG}text")]


def svg_ids(document: bytes | str) -> set[str]:
    return {element.get("id", "") for element in ElementTree.fromstring(document).iter()}


def causal_trace(tokens: int, layers: int = 1, heads: int = 2) -> AttentionTrace:
    """A causal trace without special tokens: each row attends to itself and earlier tokens only."""
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(layers, heads, tokens, tokens, generator=generator)  # (L, H, T, S)
    future = torch.ones(tokens, tokens, dtype=torch.bool).triu(diagonal=1)
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    words = tuple(f" w{index}" if index % 5 else "," for index in range(tokens))
    return AttentionTrace(weights, ("The", *words[1:]), tuple(range(layers)), "".join(words), "toy")


# -- sizes ---------------------------------------------------------------------------------------------------


def test_the_heatmap_grid_png_is_one_cell_per_head_plus_fixed_margins(toy: AttentionTrace, tmp_path: Path) -> None:
    path = write_heatmap_grid(toy, tmp_path / "grid.png", dpi=50)
    width, height = grid_inches(toy)
    assert png_size(path.read_bytes()) == (round(width * 50), round(height * 50))
    # The same tokens: the margins stay and the cells add up (a wider grid may wrap its title on fewer lines).
    assert grid_inches(make_trace(layers=2, heads=7))[0] - width == pytest.approx(1.3 * (7 - 3))
    assert grid_inches(make_trace(layers=5, heads=3))[1] - height == pytest.approx(1.3 * (5 - 2))


def test_the_arc_diagram_png_has_the_promised_width_and_at_most_the_promised_height(toy: AttentionTrace) -> None:
    width, height = arc_inches(toy)
    assert width == pytest.approx(max(0.6 * 7 + 1.0, 6.0))  # "[CLS]", "[SEP]" need 0.6 inch each: 6 inches at least
    drawn = png_size(arc_diagram(toy, head=2, dpi=40))
    assert drawn[0] == round(width * 40) and drawn[1] <= round(height * 40)


def test_a_58_token_arc_diagram_stays_within_the_width_cap_and_says_what_it_left_out() -> None:
    trace = causal_trace(58)
    picture = arc_diagram(trace, dpi=100)
    assert png_size(picture)[0] <= ARC_WIDTH_LIMITS[1] * 100  # 1,600 pixels, not 3,580
    texts = svg_texts(arc_diagram(trace, format="svg"))
    assert any(re.fullmatch(r"the 116 strongest of \d+ arcs of at least 0\.02 are drawn", text) for text in texts)


def test_a_text_longer_than_the_limit_shows_its_last_tokens_and_says_so() -> None:
    trace = causal_trace(120)
    assert png_size(arc_diagram(trace, dpi=100))[0] <= ARC_WIDTH_LIMITS[1] * 100
    texts = svg_texts(arc_diagram(trace, format="svg"))
    assert "tokens 24…119 of 0…119 are shown; arcs to and from the others are left out" in texts
    with pytest.raises(InputError, match=r"at most 96 tokens, not 100"):
        arc_diagram(trace, tokens=(0, 100))


# -- what is drawn -------------------------------------------------------------------------------------------


def test_the_arc_diagram_svg_parses_and_holds_every_token_as_text(toy: AttentionTrace, tmp_path: Path) -> None:
    path = write_arc_diagram(toy, tmp_path / "arcs.svg", layer=1, head=0)
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    texts = svg_texts(path.read_bytes())
    assert all(label in texts for label in toy.labels)
    assert any("layer 1 · head 0" in text for text in texts)
    assert len(list(root.iter(f"{SVG}path"))) > len(toy.tokens)  # the arcs
    document = path.read_text()
    urls = set(re.findall(r"https?://[^\s\"'<]+", document))
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # names, never fetched
    assert urls <= namespaces | {"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"}
    assert "<image" not in document and set(re.findall(r'href="(.)', document)) <= {"#"}  # only its own markers


def test_the_arc_legend_names_the_traces_own_sinks(toy: AttentionTrace) -> None:
    texts = svg_texts(arc_diagram(toy, format="svg"))
    assert "to or from a sink ([CLS] [SEP])" in texts and "looks left (at an earlier token)" in texts
    causal = svg_texts(arc_diagram(causal_trace(8), format="svg"))
    assert "to or from a sink (The)" in causal  # a causal trace without special tokens: its first token
    bidirectional = make_trace(("The", " dog", " runs", "."), layers=1)
    assert not any(text.startswith("to or from a sink") for text in svg_texts(arc_diagram(bidirectional, format="svg")))


def test_the_heatmap_grid_labels_its_axes_with_the_tokens_and_has_colour_bars(toy: AttentionTrace) -> None:
    document = heatmap_grid(toy, format="svg")
    texts = svg_texts(document)
    assert all(texts.count(label) >= 2 for label in toy.labels)  # down the left and along the bottom
    words = " ".join(texts)  # a note wrapped over lines is a text element per line
    assert "sink columns ([CLS] [SEP]): the weight itself" in words
    assert f"colour: weight ÷ the head's scale, the {PERCENTILE}th percentile of its weights outside the sinks" in words
    assert {"qkv-colorbar-0", "qkv-colorbar-1"} <= svg_ids(document)
    without_sinks = heatmap_grid(make_trace(("a", " b", " c"), layers=1), format="svg")
    assert "qkv-colorbar-0" in svg_ids(without_sinks) and "qkv-colorbar-1" not in svg_ids(without_sinks)


def test_a_long_text_labels_every_kth_token_where_all_do_not_fit() -> None:
    texts = svg_texts(heatmap_grid(causal_trace(60), format="svg"))
    assert "The" in texts and "w4" in texts and "w1" not in texts  # 60 rows in 1.2 inches: every 4th label


@pytest.mark.parametrize("layers", [6, 30])
def test_the_title_and_colour_bars_never_cover_a_panel(layers: int) -> None:
    trace = causal_trace(6, layers=layers, heads=3)
    figure = heatmap_figure(trace)
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    panels = [axes for axes in figure.axes if str(axes.get_gid()).startswith("qkv-panel")]
    assert len(panels) == layers * 3
    boxes = [axes.get_window_extent(renderer) for axes in panels]
    boxes += [axes.title.get_window_extent(renderer) for axes in panels if axes.get_title()]  # "head 0", …
    header = [text.get_window_extent(renderer) for text in figure.texts]  # the title lines and the bars' notes
    bars = [axes for axes in figure.axes if str(axes.get_gid()).startswith("qkv-colorbar")]
    header += [axes.get_window_extent(renderer) for axes in bars]
    assert len(header) >= 4
    whole = figure.bbox
    for outer in header:
        assert outer.x0 >= whole.x0 and outer.x1 <= whole.x1 and outer.y1 <= whole.y1  # inside the picture
        for inner in boxes:
            assert not outer.overlaps(inner), (outer, inner)


def test_the_scale_of_a_head_leaves_out_the_sinks_and_the_future() -> None:
    trace = causal_trace(5)
    weights = trace.weights[0, 0]  # (T, S)
    cells = torch.cat([weights[t, 1 : t + 1] for t in range(1, 5)])  # below the diagonal, without column 0
    rank = -(-PERCENTILE * len(cells) // 100)  # the nearest-rank percentile
    assert float(head_scales(trace)[0, 0]) == pytest.approx(float(cells.sort().values[rank - 1]))
    assert float(weights[0, 0]) == 1.0 and float(head_scales(trace).max()) < 1.0  # the sink does not set it


def test_the_same_trace_draws_the_same_svg(toy: AttentionTrace) -> None:
    assert arc_diagram(toy, format="svg") == arc_diagram(toy, format="svg")


def test_every_word_on_a_figure_comes_from_its_text(toy: AttentionTrace) -> None:
    def placeholders(template: str) -> str:
        return " ".join("{" + name + "}" for _, name, _, _ in string.Formatter().parse(template) if name)

    english = vars(FigureText())
    text = FigureText(**{name: f"<{name}> {placeholders(value)}" for name, value in english.items()})
    words = " ".join(svg_texts(heatmap_grid(toy, format="svg", text=text)))
    words += " " + " ".join(svg_texts(arc_diagram(toy, format="svg", text=text, max_arcs=3)))
    for name in english:
        if name != "tokens_cut":  # no token is left out here
            assert f"<{name}>" in words, name
    rest = re.sub(r"<\w+>", "", words)
    assert "layer" not in rest and "head" not in rest and "sink" not in rest and "colour" not in rest


def test_arc_figure_and_heatmap_figure_are_what_the_bytes_show(toy: AttentionTrace) -> None:
    assert len(arc_figure(toy).axes) == 1 and len(heatmap_figure(toy).axes) == 2 * 3 + 2


def test_a_picture_name_without_a_known_suffix_needs_a_format(toy: AttentionTrace, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"name it \.png or \.svg"):
        write_heatmap_grid(toy, tmp_path / "grid.jpg")
