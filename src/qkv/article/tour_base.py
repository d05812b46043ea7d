"""The tour's building blocks: what a section is, how numbers and tables are written, what a section sees.

A tour is a title, a few header lines and :class:`Section` s; a section is a heading, lines of text and
:class:`Figure` s (attention weights to draw, for the HTML page). The same :class:`Tour` prints as text
(:meth:`Tour.lines`) and becomes a page (:mod:`qkv.article.tour_page`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from qkv.article.messages import Messages
from qkv.article.vectors import VectorDatabase
from qkv.shapes import ShapeError, Tensor

__all__ = ["WIDTH", "Context", "Figure", "Section", "SentenceTrace", "Tour", "num", "table", "wrap"]

#: The terminal text's width: longer lines are folded at spaces (tables are narrower).
WIDTH = 100


def num(x: Tensor | float) -> str:
    """How the tour writes a number: signed, three decimals (the tests format expected numbers with it)."""
    return f"{float(x):+.3f}"


def table(words: Sequence[str], numbers: Tensor, *, per_line: int = 5, indent: str = "  ") -> list[str]:
    """``word +0.123`` cells, aligned in columns, ``per_line`` to a line."""
    cells = [f"{word:>12} {num(x)}" for word, x in zip(words, numbers.tolist(), strict=True)]
    return [indent + "".join(cells[i : i + per_line]) for i in range(0, len(cells), per_line)]


def wrap(line: str, width: int = WIDTH) -> list[str]:
    """``line`` folded at spaces to ``width``; continuation lines are indented two more than the first."""
    if len(line) <= width:
        return [line]
    indent = " " * (len(line) - len(line.lstrip(" ")))
    return textwrap.wrap(line.strip(), width=width, initial_indent=indent, subsequent_indent=indent + "  ")


@dataclass(frozen=True, eq=False)
class Figure:
    """Attention weights ``(L, H, T, S)`` over ``tokens`` to draw: one head (``head``, or the only one) as
    arcs, several as a grid of heatmaps."""

    weights: Tensor
    tokens: tuple[str, ...]
    caption: str
    layers: tuple[int, ...] = (0,)
    special: tuple[bool, ...] = ()
    head: int | None = None  # draw only this head of the first layer, as arcs

    def __post_init__(self) -> None:
        if self.weights.dim() != 4 or not self.weights.shape[-2] == self.weights.shape[-1] == len(self.tokens):
            raise ShapeError(f"a figure needs weights (L, H, T, S) over its tokens, got {tuple(self.weights.shape)}")


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
        header = [part for line in self.header for part in wrap(line)]
        return [self.title, *header, *(line for section in self.sections for line in section.text())]


class SentenceTrace(Protocol):
    """What Part 4's stacking needs from a trace of the sentence through the whole model
    (:class:`qkv.inspection.AttentionTrace` is one): weights ``(L, H, T, S)`` and the tokens."""

    @property
    def weights(self) -> Tensor: ...

    @property
    def tokens(self) -> tuple[str, ...]: ...

    @property
    def special(self) -> tuple[bool, ...]: ...

    @property
    def layers(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class Context:
    """What every section builder gets: the vectors, the sentence's words, the length and the language."""

    database: VectorDatabase
    words: list[str]
    quick: bool
    say: Messages
    model_trace: SentenceTrace | None = None
