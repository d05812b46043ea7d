"""``qkv tour`` — the article's three parts on its sentence, what it left out, every number computed now.

    qkv tour                      # Parts 1–4 in the terminal
    qkv tour --quick --lang es    # the short version, in Spanish
    qkv tour --part 4             # one part
    qkv tour --html tour.html     # the same tour as one self-contained page, with figures

The text is built by :func:`qkv.article.tour.make_tour`; this module parses options, runs MiniLM once on the
sentence for Part 4's stacking section (the article layer does not load whole models), draws the figures for
``--html`` (pictures with :mod:`qkv.render.figures`, interactive views with :mod:`qkv.render.html`), and prints
or writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qkv.article.tour_base import Figure
    from qkv.article.tour_page import Views
    from qkv.data.trace import AttentionTrace

LANGUAGES = ("en", "es")  # qkv.article.messages.LANGS, without importing torch to build the parser


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tour",
        help="the article, runnable: its three parts and what it left out, with computed numbers",
        description="Walk through the article's three parts on its sentence with MiniLM's real vectors, then "
        "what it left out: softmax, heads, the 1/√K scale, positions and stacked layers.",
    )
    parser.add_argument("--quick", action="store_true", help="the short version (what `make demo` runs)")
    parser.add_argument(
        "--part",
        type=int,
        choices=(1, 2, 3, 4),
        metavar="N",
        help="show only part N (1–4); part 3 ends with the final link, part 4 is what the article left out",
    )
    parser.add_argument("--lang", choices=LANGUAGES, default="en", help="the language of the text: en or es")
    parser.add_argument("--html", metavar="FILE", help="write the tour as one self-contained HTML page to FILE")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qkv.cli.output import check_writable, emit  # the same checks and atomic write as `qkv attend -o`

    if args.html is not None:
        check_writable(Path(args.html))  # before any work: one line, exit 2
    from qkv.threads import use_threads

    # Small tensors: one thread is faster, and far faster on a busy machine (see `qkv attend`).
    use_threads(1)
    from qkv.article.tour import make_tour, needs_model_trace

    model_trace = _minilm_trace() if needs_model_trace(args.part) else None
    tour = make_tour(quick=args.quick, part=args.part, lang=args.lang, model_trace=model_trace)
    if args.html is None:
        print("\n".join(tour.lines()))
        return 0
    from qkv.article.tour_page import tour_html
    from qkv.cli.progress import say

    say("drawing the page's figures")
    emit(args.html, tour_html(tour, draw=draw_figure, views=figure_views(tour.lang)))
    return 0


def _minilm_trace() -> AttentionTrace:
    """The article's sentence through the whole of MiniLM: what Part 4's stacking section reads."""
    from qkv.article.vectors import SENTENCE
    from qkv.cli.progress import loading
    from qkv.inspection.trace import trace
    from qkv.pretrained import load

    loading("minilm")
    return trace(load("minilm"), SENTENCE)


def draw_figure(figure: Figure) -> bytes:
    """A tour figure as SVG, with its words in the tour's language: one head as an arc diagram, several as a
    grid of heatmaps."""
    from qkv.render.figures import FigureText, arc_diagram, heatmap_grid

    trace, text = figure.trace, FigureText(**figure.words)
    if figure.head is not None:
        return arc_diagram(trace, layer=trace.layers[0], head=figure.head, format="svg", text=text)
    if trace.weights.shape[:2] == (1, 1):
        return arc_diagram(trace, format="svg", text=text)
    return heatmap_grid(trace, format="svg", text=text)


def figure_views(lang: str) -> Views:
    """The tour's figures as interactive views in ``lang``: each figure's trace in the view ``qkv attend --format
    html`` writes (the grid of its heads, a hovered token's lines, the heatmap), starting on the figure's head
    (an only head; else the mean of the last layer's), its picture shown where scripts do not run."""
    from qkv.article.tour_page import Views
    from qkv.render.html import trace_fragment, view_script, view_style

    def fragment(figure: Figure, picture: str | None) -> str:
        trace = figure.trace
        head = figure.head if figure.head is not None else (0 if trace.heads == 1 else None)
        layer = trace.layers[0] if figure.head is not None else None  # a figure's head is of the first layer
        return trace_fragment(trace, layer=layer, head=head, compact=False, lang=lang, assets=False, fallback=picture)

    return Views(fragment, view_style(), view_script())
