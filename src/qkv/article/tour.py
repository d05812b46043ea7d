"""The tour: the article's three parts on its sentence, what it left out, every number computed now.

:func:`make_tour` returns a :class:`~qkv.article.tour_base.Tour` (sections of text and figures, in English or
Spanish); :func:`build_tour` its lines. Neither prints (``qkv tour`` prints them, or writes them as a page).
The vectors are MiniLM's (:mod:`qkv.article.vectors`); Parts 1–3 come from :mod:`~qkv.article.tour_parts`,
Part 4 from :mod:`~qkv.article.tour_beyond`. Two claims are checked while the tour runs — Part 3 + softmax
+ ``1/√K`` is ``qkv.attend``, and so are the heads of Part 4 — and a mismatch raises ``RuntimeError``
instead of printing a wrong claim.

Part 4's last section (stacking) reads a trace of the sentence through the whole model, which this layer
does not compute: pass ``model_trace=qkv.trace(qkv.load("minilm"), SENTENCE)`` (``qkv tour`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from qkv.article.messages import messages
from qkv.article.one_head import article_head
from qkv.article.tour_base import Context, Section, Tour, figure_words, num
from qkv.article.tour_beyond import left_out
from qkv.article.tour_parts import FINAL_LINK_TOLERANCE, RATIO, SIMILAR_WORDS, part1, part2, part3
from qkv.article.vectors import SENTENCE, VectorDatabase, default_database, split_words
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError

__all__ = [
    "FINAL_LINK_TOLERANCE",
    "PARTS",
    "RATIO",
    "SIMILAR_WORDS",
    "build_tour",
    "make_tour",
    "needs_model_trace",
    "num",
]

PARTS = (1, 2, 3, 4)
_SECTIONS: dict[int, Callable[[Context], list[Section]]] = {1: part1, 2: part2, 3: part3, 4: left_out}


def needs_model_trace(part: int | None) -> bool:
    """Whether the tour (or ``part`` of it) shows Part 4, whose stacking section reads the model's trace."""
    return part is None or part == 4


def make_tour(
    *,
    quick: bool = False,
    part: int | None = None,
    lang: str = "en",
    database: VectorDatabase | None = None,
    model_trace: AttentionTrace | None = None,
) -> Tour:
    """The tour in ``lang`` (``"en"`` or ``"es"``); ``part`` shows only that part (3 ends with the final link).

    ``model_trace`` is the sentence's trace through MiniLM, needed when Part 4 is shown
    (:func:`needs_model_trace`).
    """
    if part is not None and part not in PARTS:
        raise InputError(f"part must be one of {', '.join(map(str, PARTS))}, got {part}; give one of them or None")
    say = messages(lang)
    database = default_database() if database is None else database
    words = split_words(SENTENCE)
    header = [say("tour.sentence", sentence=repr(SENTENCE)), say("tour.words", words=" · ".join(words))]
    if not quick:
        split = [f"{word} = {' + '.join(database.pieces(word))}" for word in words if len(database.pieces(word)) > 1]
        header.append(say("tour.vectors", width=database.value(words[0]).shape[0], pieces="; ".join(split)))
    context = Context(database, words, article_head(database, words), quick, say, model_trace)
    sections = [section for number in (PARTS if part is None else (part,)) for section in _SECTIONS[number](context)]
    drawn = figure_words(say.lang)  # every figure's own words, in the tour's language
    sections = [
        replace(section, figures=tuple(replace(f, words=drawn) for f in section.figures)) for section in sections
    ]
    return Tour(say.lang, say("tour.title"), tuple(header), tuple(sections))


def build_tour(
    *,
    quick: bool = False,
    part: int | None = None,
    lang: str = "en",
    database: VectorDatabase | None = None,
    model_trace: AttentionTrace | None = None,
) -> list[str]:
    """The tour's text, one string per line (see :func:`make_tour`)."""
    return make_tour(quick=quick, part=part, lang=lang, database=database, model_trace=model_trace).lines()
