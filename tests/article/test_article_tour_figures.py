"""The tour's figures speak the tour's language: every word drawn on them comes from its message tables."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import fields

from qkv.article.messages import TABLES
from qkv.article.tour_base import FIGURE_WORDS, Tour, figure_words
from qkv.cli.tour import draw_figure
from qkv.render.figures import FigureText

SVG = "{http://www.w3.org/2000/svg}"


def drawn_words(tour: Tour) -> list[str]:
    """The text of every figure of ``tour``, as ``qkv tour --html`` draws them, one string per figure."""
    words = []
    for figure in (figure for section in tour.sections for figure in section.figures):
        root = ElementTree.fromstring(draw_figure(figure))
        words.append(" ".join("".join(element.itertext()) for element in root.iter(f"{SVG}text")))
    return words


def test_the_figure_keys_are_the_renderers_words_and_english_is_its_default() -> None:
    assert tuple(field.name for field in fields(FigureText)) == FIGURE_WORDS
    for lang in TABLES:
        assert set(figure_words(lang)) == set(FIGURE_WORDS)
    assert figure_words("en") == {field.name: getattr(FigureText(), field.name) for field in fields(FigureText)}


def test_the_spanish_tours_figures_are_in_spanish(tour_es: Tour) -> None:
    figures = drawn_words(tour_es)
    assert len(figures) >= 3
    assert all(figure.words == figure_words("es") for section in tour_es.sections for figure in section.figures)
    every = " ".join(figures)
    assert "la atención de cada cabeza (fila: un token; columna: el token al que atiende)" in every
    assert "capa 0" in every and "cabeza 11" in every and "mira a la izquierda" in every
    assert "columnas sumidero ([CLS] [SEP])" in every  # the stacking figure: MiniLM's own trace
    sentence = "Evan's dog Riley is so hyperactive, she never stops moving"  # quoted as it is: the article's
    rest = re.sub(r"\[\w+\]", "", every.replace(sentence, ""))
    for english in ("layer", "head", "attends", "weight", "looks", "colour", "strongest", "sink", " of "):
        assert english not in rest, english


def test_the_english_tours_figures_are_in_english(tour_en: Tour) -> None:
    every = " ".join(drawn_words(tour_en))
    assert "attention of every head" in every and "layer 0" in every and "cabeza" not in every
