"""PNG and SVG pictures of a trace: the size they promise, SVG that parses with the tokens as text."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.render.figures import arc_diagram, arc_inches, grid_inches, write_arc_diagram, write_heatmap_grid

SVG = "{http://www.w3.org/2000/svg}"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_heatmap_grid_png_is_one_cell_per_head_plus_margins(toy: AttentionTrace, tmp_path: Path) -> None:
    path = write_heatmap_grid(toy, tmp_path / "grid.png", dpi=50)
    assert grid_inches(toy) == pytest.approx((1.0 + 1.3 * 3, 0.9 + 1.3 * 2))  # 3 heads across, 2 layers down
    assert png_size(path.read_bytes()) == (round(4.9 * 50), round(3.5 * 50))


def test_the_arc_diagram_svg_parses_and_holds_every_token_as_text(toy: AttentionTrace, tmp_path: Path) -> None:
    path = write_arc_diagram(toy, tmp_path / "arcs.svg", layer=1, head=0)
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    texts = ["".join(element.itertext()) for element in root.iter(f"{SVG}text")]
    assert all(label in texts for label in toy.labels)
    assert any("layer 1 · head 0" in text for text in texts)
    assert len(list(root.iter(f"{SVG}path"))) > len(toy.tokens)  # the arcs
    document = path.read_text()
    urls = set(re.findall(r"https?://[^\s\"'<]+", document))
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # names, never fetched
    assert urls <= namespaces | {"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"}
    assert "<image" not in document and "href=" not in document


def test_the_same_trace_draws_the_same_svg(toy: AttentionTrace) -> None:
    assert arc_diagram(toy, format="svg") == arc_diagram(toy, format="svg")


def test_an_arc_diagram_png_has_the_promised_size(toy: AttentionTrace) -> None:
    tokens = len(toy.tokens)
    width = max(0.6 * tokens + 1.0, 6.0)  # 0.6 inch per token and an inch of margin, 6 inches at the least
    assert arc_inches(toy) == pytest.approx((width, 5.0))
    assert png_size(arc_diagram(toy, head=2, dpi=40)) == (round(width * 40), round(5.0 * 40))


def test_a_picture_name_without_a_known_suffix_needs_a_format(toy: AttentionTrace, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"name it \.png or \.svg"):
        write_heatmap_grid(toy, tmp_path / "grid.jpg")
