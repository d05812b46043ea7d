"""The tour as one HTML page: it parses, holds every section and figure, and names no address."""

from __future__ import annotations

import base64
import html
from html.parser import HTMLParser
from pathlib import Path

import qkv.article
from qkv.article.tour_base import Figure, Tour
from qkv.article.tour_page import Views, style, tour_html

VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Page(HTMLParser):
    """Checks that every element is closed in order, and collects headings, <pre> texts and image sources."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.headings: list[str] = []
        self.pres: list[str] = []
        self.images: list[str] = []
        self.html_lang: str | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.html_lang = values.get("lang")
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag in ("h1", "h2", "h3", "pre"):
            self._text = []
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()
        if tag in ("h2", "h3") and self._text is not None:
            self.headings.append("".join(self._text))
        if tag == "pre" and self._text is not None:
            self.pres.append("".join(self._text))
        if tag in ("h1", "h2", "h3", "pre"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert parser.open == [], f"unclosed: {parser.open}"
    return parser


def _fake_draw(figure: Figure) -> bytes:
    return f"<svg><text>{html.escape(figure.caption)}</text></svg>".encode()


def test_the_page_parses_and_holds_every_section_in_order(tour_en: Tour) -> None:
    page = tour_html(tour_en, draw=_fake_draw)
    parsed = _parse(page)
    assert parsed.html_lang == "en"
    assert parsed.headings == [section.title for section in tour_en.sections]
    for section in tour_en.sections:
        assert "\n".join(section.lines) in parsed.pres  # the terminal's text, unfolded


def test_every_figure_is_an_inline_picture(tour_en: Tour) -> None:
    figures = [figure for section in tour_en.sections for figure in section.figures]
    assert len(figures) >= 3
    parsed = _parse(tour_html(tour_en, draw=_fake_draw))
    assert len(parsed.images) == len(figures)
    prefix = "data:image/svg+xml;base64,"
    assert all(src.startswith(prefix) for src in parsed.images)
    assert [base64.b64decode(src[len(prefix) :]) for src in parsed.images] == [_fake_draw(f) for f in figures]


def test_the_page_names_no_address_and_loads_nothing(tour_es: Tour) -> None:
    page = tour_html(tour_es, draw=_fake_draw)
    assert "http://" not in page and "https://" not in page and "//" not in page.replace("://", "")
    assert "<script" not in page and "<link" not in page
    assert _parse(page).html_lang == "es"


def test_without_a_drawer_the_page_has_the_text_and_no_pictures(tour_en: Tour) -> None:
    parsed = _parse(tour_html(tour_en))
    assert parsed.images == [] and len(parsed.headings) == len(tour_en.sections)


def test_the_inline_style_is_the_package_file(tour_en: Tour) -> None:
    css = (Path(qkv.article.__file__).parent / "static" / "tour.css").read_text(encoding="utf-8")
    page = tour_html(tour_en)
    assert style() == css and page.count("<style>") == 1 and f"<style>{css}</style>" in page
    assert "</" not in css and "url(" not in css  # inlined: it cannot close its element or load anything


def test_with_views_each_figure_is_a_view_that_shows_its_picture_without_scripts(tour_en: Tour) -> None:
    figures = [figure for section in tour_en.sections for figure in section.figures]
    given: list[tuple[Figure, str | None]] = []

    def fragment(figure: Figure, picture: str | None) -> str:
        given.append((figure, picture))
        return f'<div class="view">{picture}</div>'

    views = Views(fragment, style=".view { color: red; }", script="window.ran = true;")
    page = tour_html(tour_en, draw=_fake_draw, views=views)
    parsed = _parse(page)
    assert [figure for figure, _ in given] == figures and len(parsed.images) == len(figures)
    prefix = "data:image/svg+xml;base64,"
    for (figure, picture), source in zip(given, parsed.images, strict=True):
        assert picture == f'<img src="{source}" alt="{html.escape(figure.caption)}">'
        assert base64.b64decode(source[len(prefix) :]) == _fake_draw(figure)
    head, body = page.split("</head>")
    assert head.count("<style>") == 2 and "<style>.view { color: red; }</style>" in head  # the page's, the views'
    assert page.count("<script>") == 1 and body.endswith("<script>window.ran = true;</script>\n</body>\n</html>\n")
    assert body.index("<script>") > body.rindex('<div class="view">')  # it sets up the views above it


def test_views_without_pictures_get_none(tour_en: Tour) -> None:
    seen: list[str | None] = []

    def fragment(figure: Figure, picture: str | None) -> str:
        seen.append(picture)
        return "<div></div>"

    tour_html(tour_en, views=Views(fragment, style="", script=""))
    assert seen and set(seen) == {None}
