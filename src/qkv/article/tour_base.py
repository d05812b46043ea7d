"""The tour's building blocks: what a section is, how numbers and tables are written, what a section sees.

A tour is a title, a few header lines and :class:`Section` s; a section is a heading, lines of text and
:class:`Figure` s (an :class:`~qkv.data.trace.AttentionTrace` to draw, with its caption, for the HTML page).
The same :class:`Tour` prints as text (:meth:`Tour.lines`) and becomes a page (:mod:`qkv.article.tour_page`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from qkv.article.messages import TABLES, Messages, messages
from qkv.article.one_head import ArticleHead
from qkv.article.vectors import SENTENCE, VectorDatabase
from qkv.data.trace import AttentionTrace
from qkv.shapes import Tensor

__all__ = [
    "FIGURE_WORDS",
    "WIDTH",
    "Context",
    "Figure",
    "Section",
    "Tour",
    "figure_words",
    "num",
    "table",
    "word_trace",
    "wrap",
]

#: The terminal text's width: longer lines are folded at spaces (tables are narrower).
WIDTH = 80


def num(x: Tensor | float) -> str:
    """How the tour writes a number: signed, three decimals (the tests format expected numbers with it)."""
    return f"{float(x):+.3f}"


def table(words: Sequence[str], numbers: Tensor, *, per_line: int = 4, indent: str = "  ") -> list[str]:
    """``word +0.123`` cells, aligned in columns, ``per_line`` to a line."""
    cells = [f"{word:>12} {num(x)}" for word, x in zip(words, numbers.tolist(), strict=True)]
    return [indent + "".join(cells[i : i + per_line]) for i in range(0, len(cells), per_line)]


def wrap(line: str, width: int = WIDTH) -> list[str]:
    """``line`` folded at spaces to ``width``; continuation lines are indented two more than the first."""
    if len(line) <= width:
        return [line]
    indent = " " * (len(line) - len(line.lstrip(" ")))
    return textwrap.wrap(line.strip(), width=width, initial_indent=indent, subsequent_indent=indent + "  ")


#: The words drawn on a figure: ``figure.<name>`` in each message table, one for each field of
#: ``qkv.render.figures.FigureText`` (the renderers sit above this layer; a test holds the two lists equal).
FIGURE_WORDS = (
    "grid_title",
    "layer",
    "head",
    "mean",
    "arcs_title",
    "scale",
    "sink_scale",
    "right",
    "left",
    "sink",
    "itself",
    "arcs_cut",
    "tokens_cut",
)


def figure_words(lang: str) -> dict[str, str]:
    """The templates of every word drawn on the tour's figures, in ``lang``: ``{"layer": "capa {layer}", …}``."""
    table = TABLES[messages(lang).lang]
    return {name: table[f"figure.{name}"] for name in FIGURE_WORDS}


@dataclass(frozen=True, eq=False)
class Figure:
    """A trace to draw, with its caption: one head (``head``, of the trace's first layer; or the only head) as
    arcs, several as a grid of heatmaps. ``words`` are the figure's own words in the tour's language
    (:func:`figure_words`; empty: the renderer's English)."""

    trace: AttentionTrace
    caption: str
    head: int | None = None
    words: Mapping[str, str] = field(default_factory=dict)


def word_trace(weights: Tensor, words: Sequence[str]) -> AttentionTrace:
    """Weights ``(L, H, T, S)`` over the sentence's ``words``, computed by the tour, as a trace of layers
    ``0 … L − 1`` of the article's sentence (float32, as a model's trace is)."""
    layers = tuple(range(weights.shape[0]))
    return AttentionTrace(weights.to(torch.float32), tuple(words), layers, SENTENCE)


@dataclass(frozen=True)
class Section:
    """One heading of the tour: ``part`` (1–4) it belongs to, its title, its lines and figures."""

    part: int
    title: str
    lines: tuple[str, ...]
    figures: tuple[Figure, ...] = ()

    def text(self) -> list[str]:
        """The section as terminal lines: a blank line, the title underlined, the lines (folded to ``WIDTH``)."""
        return ["", self.title, "─" * len(self.title), *(part for line in self.lines for part in wrap(line))]


@dataclass(frozen=True)
class Tour:
    """The whole tour in one language."""

    lang: str
    title: str
    header: tuple[str, ...]
    sections: tuple[Section, ...]

    def lines(self) -> list[str]:
        """The tour as terminal text, one string per line."""
        header = [part for line in (self.title, *self.header) for part in wrap(line)]
        return [*header, *(line for section in self.sections for line in section.text())]


@dataclass(frozen=True)
class Context:
    """What every section builder gets: the vectors, the sentence's words, the head Parts 2–3 read, the length
    and the language."""

    database: VectorDatabase
    words: list[str]
    head: ArticleHead
    quick: bool
    say: Messages
    model_trace: AttentionTrace | None = None
