"""A trace as a picture (PNG or SVG, with matplotlib's Agg backend: no display, no network, no font download).

- :func:`heatmap_grid` — every captured head: a grid of small heatmaps, one row per layer, one column per
  head; in each, row ``t`` is a token and column ``s`` the token it attends to. Token labels sit on the outer
  axes where they fit (every k-th one where they do not). Each head is shaded against its own scale
  (:mod:`qkv.data.scale`: a high percentile of its weights outside the sink columns), so that a sink's weight
  (a causal model's first token attends to itself with 1.0) does not wash out every other row; the sink columns
  are drawn in grey against 1. Two colour bars and a line under the title say so.
- :func:`arc_diagram` — one head: the tokens in order along a line, and an arc from each token to each token it
  attends to, as wide as the weight. Arcs above the line look right (at later tokens), arcs below look left (at
  earlier tokens; a causal model draws only these); arcs from or to the sinks (``trace.sinks``) are thin and
  grey; a dot above a token is its attention to itself. A legend says which is which. Only the ``max_arcs``
  strongest arcs are drawn and at most ``ARC_TOKEN_LIMIT`` tokens (the last ones by default): a line under the
  title says what was left out. The picture is at most ``ARC_WIDTH_LIMITS[1]`` inches wide.

Every word on a figure comes from a :class:`FigureText` (English by default): the tour passes its own, in its
language. Each function returns the file's bytes (``heatmap_figure`` and ``arc_figure`` return the matplotlib
figure itself); ``write_heatmap_grid`` and ``write_arc_diagram`` write them to a path (the format from its
suffix). Sizes follow from the trace's shape, not from the drawing (:func:`grid_inches`, :func:`arc_inches`): a
PNG is ``round(inches × dpi)`` pixels.
"""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from qkv.data.scale import PERCENTILE, head_scales
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.files import write_atomically

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Arc

__all__ = [
    "ARC_TOKEN_LIMIT",
    "ARC_WIDTH_LIMITS",
    "FigureText",
    "arc_diagram",
    "arc_figure",
    "arc_inches",
    "grid_inches",
    "heatmap_figure",
    "heatmap_grid",
    "write_arc_diagram",
    "write_heatmap_grid",
]

ImageFormat = Literal["png", "svg"]


@dataclass(frozen=True)
class FigureText:
    """Every word drawn on a figure, as :meth:`str.format` templates (English by default; the tour passes the
    texts of its language, ``figure.*`` in :mod:`qkv.article.messages_en` and ``messages_es``)."""

    grid_title: str = "attention of every head (row: a token; column: the token it attends to)"
    layer: str = "layer {layer}"
    head: str = "head {head}"
    mean: str = "mean of {heads} heads"
    arcs_title: str = "layer {layer} · {which}: arc width = weight"
    scale: str = "colour: weight ÷ the head's scale, the {percentile}th percentile of its weights outside the sinks"
    sink_scale: str = "sink columns ({sinks}): the weight itself"
    right: str = "looks right (at a later token)"
    left: str = "looks left (at an earlier token)"
    sink: str = "to or from a sink ({sinks})"
    itself: str = "to itself (dot)"
    arcs_cut: str = "the {shown} strongest of {total} arcs of at least {threshold} are drawn"
    tokens_cut: str = "tokens {first}…{last} of 0…{final} are shown; arcs to and from the others are left out"


GRID_CELL = 1.3  # inches per head in the grid (the panel and the gap beside it)
GRID_GAP = 0.1  # inches between two panels
TITLE_FONT, NOTE_FONT, LABEL_FONT = 10.0, 7.5, 9.0  # points
LINE = 1.45 / 72  # inches per point of font size, for a line of text
CHAR = 0.6 / 72  # inches per point of font size, for an average character
TOKEN_FONT = (4.5, 7.0)  # points: the smallest and largest font of token labels on the grid's axes
LABEL_CHARS = 10  # longer token labels are cut with "…"
COLORBAR = 0.32  # inches of a colour bar with its ticks

ARC_INCHES_PER_TOKEN = 0.45
ARC_WIDTH_LIMITS = (6.0, 16.0)  # inches: 1,600 pixels at the default dpi, whatever the text's length
ARC_HEIGHT = 5.0  # inches of the drawing at most, without the title and the legend
ARC_TOKEN_LIMIT = 96  # tokens drawn at most: 16 inches hold 96 rotated labels of 8 points
ARC_FONT = 9.0
ARC_HEADER = 0.22 + 2 * LINE * TITLE_FONT + 2 * LINE * NOTE_FONT  # inches: two lines of title, two of notes
ARC_LEGEND = 0.5  # inches: two rows of the legend at most
ARC_STRETCH = 1.5  # an arc may be up to this many times as high as it is wide, to fill the picture
RIGHT, LEFT, SELF, SINK = "#c0392b", "#2c5d8f", "#555555", "#9a9a9a"


# -- sizes --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GridLayout:
    """Where everything of the heatmap grid goes: inches, measured from the figure's top left."""

    width: float
    height: float
    title: list[str]  # its lines
    notes: list[list[str]]  # the lines above each colour bar: the heads' scale, then the sinks' (if any)
    bar_width: float
    bar_top: float  # the colour bars' top edge
    left: float  # the panels' left edge
    top: float  # the panels' top edge
    token_font: float  # the token labels' font, in points
    token_step: int  # label every k-th token


def _token_font(tokens: int) -> tuple[float, int]:
    """The font of the grid's token labels and the step between labelled tokens (every one where they fit)."""
    room = (GRID_CELL - GRID_GAP) * 72 / tokens * 0.85  # points per token, less a little air
    if room >= TOKEN_FONT[0]:
        return min(room, TOKEN_FONT[1]), 1
    return TOKEN_FONT[0], math.ceil(TOKEN_FONT[0] / room)


def _cut(label: str, length: int = LABEL_CHARS) -> str:
    return label if len(label) <= length else label[: length - 1] + "…"


def _wrap(text: str, inches: float, font: float) -> list[str]:
    return textwrap.wrap(text, width=max(20, int(inches / (CHAR * font))), break_on_hyphens=False) or [""]


def _title_text(trace: AttentionTrace, what: str) -> str:
    return f"{trace.model + ' · ' if trace.model else ''}{what}"


def _quoted(trace: AttentionTrace) -> str:
    text = " ".join(trace.text.split())
    return f"“{text if len(text) <= 100 else text[:99] + '…'}”"


def _grid_layout(trace: AttentionTrace, text: FigureText) -> _GridLayout:
    L, H, T = trace.weights.shape[:3]
    font, step = _token_font(T)
    label_inches = max(len(_cut(label)) for label in trace.labels[::step]) * CHAR * font + 0.08
    left = 0.45 + label_inches  # "layer N", then the token labels
    width = left + GRID_CELL * H + 0.3
    title = _wrap(_title_text(trace, text.grid_title), width - 0.3, TITLE_FONT)
    title += _wrap(_quoted(trace), width - 0.3, TITLE_FONT)
    bars = 2 if any(trace.sinks) else 1
    bar_width = min(3.2, (width - 0.3 - 0.3 * bars) / bars)
    notes = [_wrap(text.scale.format(percentile=PERCENTILE), bar_width, NOTE_FONT)]
    if bars == 2:
        notes.append(_wrap(text.sink_scale.format(sinks=" ".join(trace.sink_labels)), bar_width, NOTE_FONT))
    bar_top = 0.12 + len(title) * LINE * TITLE_FONT + 0.1 + max(map(len, notes)) * LINE * NOTE_FONT + 0.04
    top = bar_top + COLORBAR + LINE * LABEL_FONT + 0.05  # the bar, its ticks, then "head N" above the panels
    height = top + GRID_CELL * L + label_inches + 0.15  # the panels, then the key tokens' labels below
    return _GridLayout(width, height, title, notes, bar_width, bar_top, left, top, font, step)


def grid_inches(trace: AttentionTrace, text: FigureText | None = None) -> tuple[float, float]:
    """(width, height) of the heatmap grid in inches: ``GRID_CELL`` per head and per layer, plus room for the
    labels, the title and the colour bars."""
    layout = _grid_layout(trace, text or FigureText())
    return layout.width, layout.height


def _arc_tokens(trace: AttentionTrace, tokens: tuple[int, int] | None) -> range:
    T = len(trace.tokens)
    if tokens is None:
        return range(max(0, T - ARC_TOKEN_LIMIT), T)
    start, stop = tokens
    if not 0 <= start < stop <= T:
        raise InputError(f"tokens {start}…{stop - 1} are not within this trace's tokens 0…{T - 1}")
    if stop - start > ARC_TOKEN_LIMIT:
        raise InputError(f"an arc diagram shows at most {ARC_TOKEN_LIMIT} tokens, not {stop - start}: narrow tokens")
    return range(start, stop)


def arc_inches(trace: AttentionTrace, tokens: tuple[int, int] | None = None) -> tuple[float, float]:
    """The largest (width, height) of an arc diagram in inches. The width is exact: ``ARC_INCHES_PER_TOKEN`` per
    token shown (up to twice that where the widest label needs it) and an inch, within ``ARC_WIDTH_LIMITS``. The
    height is ``ARC_HEADER`` + ``ARC_HEIGHT`` + ``ARC_LEGEND`` at most: the drawing is lower when its arcs need
    less."""
    low, high = ARC_WIDTH_LIMITS
    shown = _arc_tokens(trace, tokens)
    widest = max(len(label) for label in trace.labels[shown.start : shown.stop]) * CHAR * ARC_FONT + 0.1
    per_token = max(ARC_INCHES_PER_TOKEN, min(widest, 2 * ARC_INCHES_PER_TOKEN))  # room for labels to lie flat
    return min(max(per_token * len(shown) + 1.0, low), high), ARC_HEADER + ARC_HEIGHT + ARC_LEGEND


def _format(path: Path, format: ImageFormat | None) -> ImageFormat:
    if format is not None:
        return format
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("png", "svg"):
        return suffix  # type: ignore[return-value]
    raise InputError(f"cannot tell the picture format of {path}: name it .png or .svg, or pass format")


# -- the heatmap grid ----------------------------------------------------------------------------------------


def write_heatmap_grid(
    trace: AttentionTrace,
    path: str | os.PathLike[str],
    *,
    format: ImageFormat | None = None,
    dpi: int = 100,
    text: FigureText | None = None,
) -> Path:
    """:func:`heatmap_grid` written atomically to ``path`` (the format from its suffix unless given)."""
    target = Path(path)
    return write_atomically(target, heatmap_grid(trace, format=_format(target, format), dpi=dpi, text=text))


def heatmap_grid(
    trace: AttentionTrace, *, format: ImageFormat = "png", dpi: int = 100, text: FigureText | None = None
) -> bytes:
    """Every captured head as a small heatmap, layers down and heads across: the PNG or SVG file's bytes."""
    return _to_bytes(heatmap_figure(trace, dpi=dpi, text=text), format)


def heatmap_figure(trace: AttentionTrace, *, dpi: int = 100, text: FigureText | None = None) -> Figure:
    """The figure :func:`heatmap_grid` saves."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    words = text or FigureText()
    L, H, T, _ = trace.weights.shape
    layout = _grid_layout(trace, words)
    figure = _figure(layout.width, layout.height, dpi)
    reds = matplotlib.colormaps["Reds"]
    sinks = torch.tensor(list(trace.sinks), dtype=torch.bool)  # (S,)
    scales = head_scales(trace)  # (L, H)
    labels = [_cut(label) for label in trace.labels]
    ticks = list(range(0, T, layout.token_step))

    def box(left: float, top: float, width: float, height: float) -> tuple[float, float, float, float]:
        """Inches from the top left → the figure fraction (left, bottom, width, height) matplotlib takes."""
        return (left / layout.width, 1 - (top + height) / layout.height, width / layout.width, height / layout.height)

    panel = GRID_CELL - GRID_GAP
    for row in range(L):
        for head in range(H):
            where = box(layout.left + GRID_CELL * head, layout.top + GRID_CELL * row, panel, panel)
            axes = figure.add_axes(where, gid=f"qkv-panel-{row}-{head}")
            weights = trace.weights[row, head].detach().float().cpu()  # (T, S)
            colours = reds((weights / scales[row, head]).clamp(max=1.0).numpy())  # (T, S, 4)
            colours[:, sinks.numpy()] = _sink_colours()(weights[:, sinks].clamp(max=1.0).numpy())
            axes.imshow(colours, interpolation="nearest", aspect="auto")
            _token_ticks(axes, labels, ticks, layout.token_font, left=head == 0, bottom=row == L - 1)
            if row == 0:
                axes.set_title(words.head.format(head=head), fontsize=LABEL_FONT, pad=3)
            if head == 0:
                axes.set_ylabel(words.layer.format(layer=trace.layers[row]), fontsize=LABEL_FONT, labelpad=2)
    top = 0.12
    for line in layout.title:
        figure.text(0.5, 1 - top / layout.height, line, ha="center", va="top", fontsize=TITLE_FONT, gid="qkv-title")
        top += LINE * TITLE_FONT
    bars = [(reds, "max")] + [(_sink_colours(), "neither")] * (len(layout.notes) - 1)
    for index, ((cmap, extend), note) in enumerate(zip(bars, layout.notes, strict=True)):
        left = 0.3 + index * (layout.bar_width + 0.3)
        axes = figure.add_axes(box(left, layout.bar_top, layout.bar_width, 0.12), gid=f"qkv-colorbar-{index}")
        bar = figure.colorbar(ScalarMappable(Normalize(0, 1), cmap), cax=axes, orientation="horizontal", extend=extend)
        bar.ax.tick_params(labelsize=NOTE_FONT, length=2, pad=1)
        x, y = (left + layout.bar_width / 2) / layout.width, 1 - (layout.bar_top - 0.04) / layout.height
        figure.text(
            x, y, "\n".join(note), ha="center", va="bottom", fontsize=NOTE_FONT, linespacing=1.2, gid="qkv-note"
        )
    return figure


@cache
def _sink_colours() -> Colormap:
    """Greys from white to dark grey (not black): the sink columns, shaded against 1."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    return ListedColormap(matplotlib.colormaps["Greys"]([0.8 * i / 255 for i in range(256)]), "qkv-sinks")


def _token_ticks(axes: Axes, labels: list[str], ticks: list[int], font: float, *, left: bool, bottom: bool) -> None:
    """Token labels on the left (queries) and bottom (keys) edges of the grid; none inside it."""
    axes.set_xticks(ticks if bottom else [])
    axes.set_yticks(ticks if left else [])
    if bottom:
        axes.set_xticklabels([labels[t] for t in ticks], rotation=90, fontsize=font)
    if left:
        axes.set_yticklabels([labels[t] for t in ticks], fontsize=font)
    axes.tick_params(length=1.5, pad=1)


# -- the arc diagram -----------------------------------------------------------------------------------------


def write_arc_diagram(
    trace: AttentionTrace,
    path: str | os.PathLike[str],
    *,
    layer: int | None = None,
    head: int | None = None,
    format: ImageFormat | None = None,
    dpi: int = 100,
    threshold: float = 0.02,
    max_arcs: int | None = None,
    tokens: tuple[int, int] | None = None,
    text: FigureText | None = None,
) -> Path:
    """:func:`arc_diagram` written atomically to ``path`` (the format from its suffix unless given)."""
    target = Path(path)
    picture = arc_diagram(
        trace,
        layer=layer,
        head=head,
        format=_format(target, format),
        dpi=dpi,
        threshold=threshold,
        max_arcs=max_arcs,
        tokens=tokens,
        text=text,
    )
    return write_atomically(target, picture)


def arc_diagram(
    trace: AttentionTrace,
    *,
    layer: int | None = None,
    head: int | None = None,
    format: ImageFormat = "png",
    dpi: int = 100,
    threshold: float = 0.02,
    max_arcs: int | None = None,
    tokens: tuple[int, int] | None = None,
    text: FigureText | None = None,
) -> bytes:
    """The arc diagram of one head (``head=None``: the mean of the layer's heads) of a captured ``layer`` (the
    last by default), as PNG or SVG bytes; see :func:`arc_figure`."""
    figure = arc_figure(
        trace, layer=layer, head=head, dpi=dpi, threshold=threshold, max_arcs=max_arcs, tokens=tokens, text=text
    )
    return _to_bytes(figure, format)


def arc_figure(
    trace: AttentionTrace,
    *,
    layer: int | None = None,
    head: int | None = None,
    dpi: int = 100,
    threshold: float = 0.02,
    max_arcs: int | None = None,
    tokens: tuple[int, int] | None = None,
    text: FigureText | None = None,
) -> Figure:
    """The figure :func:`arc_diagram` saves. Arcs below ``threshold`` are left out, and all but the
    ``max_arcs`` strongest of the others (``2 ×`` the tokens shown by default; sink arcs are drawn apart, thin).
    ``tokens=(start, stop)`` picks the tokens shown (by default all of them, or the last ``ARC_TOKEN_LIMIT``)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Arc
    from matplotlib.transforms import offset_copy

    words = text or FigureText()
    index = trace.layer_index(layer)
    shown = _arc_tokens(trace, tokens)
    first = shown.start
    weights = trace.head_weights(trace.layers[index], head)[first : shown.stop, first : shown.stop].tolist()
    labels = trace.labels[first : shown.stop]
    sinks = trace.sinks[first : shown.stop]
    special = trace.special[first : shown.stop]
    n = len(labels)
    limit = 2 * n if max_arcs is None else max_arcs
    pairs = [(weights[t][s], t, s) for t in range(n) for s in range(n) if s != t and weights[t][s] >= threshold]
    text_arcs = sorted(((w, t, s) for w, t, s in pairs if not (sinks[s] or sinks[t])), reverse=True)
    sink_arcs = [(w, t, s) for w, t, s in pairs if sinks[s] or sinks[t]]
    drawn = text_arcs[:limit]

    # The labels need room on both sides of the line; the text's arcs share the rest and set the scale. Arcs are
    # at most ARC_STRETCH times as high as they are wide, and the drawing only as high as they need (≤ ARC_HEIGHT).
    width, most = arc_inches(trace, tokens)
    spacing = (width - 0.6) / max(n, 1) * 72  # points per token along the line
    widest = max((len(label) for label in labels), default=1) * CHAR * ARC_FONT * 72  # points
    rotate = widest > spacing * 0.95
    half_label = (widest / 2 if rotate else ARC_FONT * 0.75) / 72 + 0.08  # inches above and below the line
    up = max((abs(s - t) / 2 for _, t, s in drawn if s > t), default=0.0)
    down = max((abs(s - t) / 2 for _, t, s in drawn if s < t), default=0.0)
    if not (up or down):
        up = down = 0.5
    frame = 2 * half_label + 0.3  # inches of the drawing that are not arcs
    rounded = (up + down) * ARC_STRETCH * (width - 0.6) / (n + 0.4)  # inches the arcs take, stretched at most
    drawing = min(ARC_HEIGHT, max(rounded + frame, 1.5))
    per_inch = (up + down) / max(drawing - frame, 0.5)  # data units per inch, upwards
    height = most - ARC_HEIGHT + drawing
    figure = _figure(width, height, dpi)

    which = _which(trace, head, words)
    lines = [(_title_text(trace, words.arcs_title.format(layer=trace.layers[index], which=which)), TITLE_FONT)]
    lines.append((_quoted(trace), TITLE_FONT))
    if len(shown) < len(trace.tokens):
        cut = words.tokens_cut.format(first=first, last=shown.stop - 1, final=len(trace.tokens) - 1)
        lines.append((cut, NOTE_FONT))
    if len(drawn) < len(text_arcs):
        lines.append((words.arcs_cut.format(shown=len(drawn), total=len(text_arcs), threshold=threshold), NOTE_FONT))
    top = 0.12
    for line, font in lines:
        room = int((width - 0.4) / (CHAR * font))
        figure.text(0.5, 1 - top / height, _cut(line, room), ha="center", va="top", fontsize=font, gid="qkv-title")
        top += LINE * font

    margin = (half_label + 0.15) * per_inch
    axes = figure.add_axes(
        (0.3 / width, (ARC_LEGEND + 0.05) / height, 1 - 0.6 / width, drawing / height), gid="qkv-arcs"
    )
    axes.set_xlim(-0.7, n - 0.3)
    axes.set_ylim(-down - margin, up + margin)
    axes.axis("off")

    for weight, t, s in sink_arcs:  # behind the text's arcs, thin, grey and flattened to the text's arcs' height
        cap = 2 * (up if s > t else down) or 1.0
        axes.add_patch(_arc(Arc, t, s, SINK, 0.4 + 1.2 * weight, 0.15 + 0.35 * weight, zorder=1, cap=cap))
    strongest = drawn[0][0] if drawn else 1.0
    for weight, t, s in reversed(drawn):  # the strongest last, on top
        colour = RIGHT if s > t else LEFT
        alpha = min(1.0, 0.3 + 0.7 * weight / strongest)
        axes.add_patch(_arc(Arc, t, s, colour, 0.5 + 6 * weight, alpha, zorder=2))

    selves = [(t, weights[t][t]) for t in range(n) if weights[t][t] >= threshold]
    if selves:  # a dot just above each label, as large as the token's weight on itself
        above = offset_copy(axes.transData, fig=figure, y=half_label * 72 + 2, units="points")
        axes.scatter(
            [t for t, _ in selves],
            [0.0] * len(selves),
            s=[4 + 60 * w for _, w in selves],
            color=SELF,
            alpha=0.8,
            linewidths=0,
            zorder=4,
            transform=above,
        )
    for t, label in enumerate(labels):
        bare = not any(character.isalnum() for character in label)  # punctuation: larger and bold, or it vanishes
        axes.text(
            t,
            0,
            label,
            ha="center",
            va="center",
            rotation=90 if rotate else 0,
            fontsize=ARC_FONT + (3 if bare else 0),
            fontweight="bold" if bare else "normal",
            color="#777777" if special[t] or sinks[t] else "black",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
            zorder=3,
        )

    handles = [
        Line2D([], [], color=RIGHT, linewidth=2.5, label=words.right),
        Line2D([], [], color=LEFT, linewidth=2.5, label=words.left),
        Line2D([], [], color=SELF, marker="o", linestyle="none", markersize=6, label=words.itself),
    ]
    if any(sinks):
        sink_label = words.sink.format(sinks=" ".join(trace.sink_labels))
        handles.insert(2, Line2D([], [], color=SINK, linewidth=1.2, label=sink_label))
    legend_chars = sum(len(str(handle.get_label())) + 6 for handle in handles)
    columns = len(handles) if legend_chars * CHAR * (NOTE_FONT + 0.5) < width - 0.4 else 2
    legend = figure.legend(
        handles=handles,
        loc="lower center",
        ncol=columns,
        frameon=False,
        fontsize=NOTE_FONT + 0.5,
        bbox_to_anchor=(0.5, 0.02 / height),
    )
    legend.set_gid("qkv-legend")
    return figure


def _which(trace: AttentionTrace, head: int | None, words: FigureText) -> str:
    if head is None and trace.heads == 1:
        head = 0  # the mean of one head is that head
    return words.head.format(head=head) if head is not None else words.mean.format(heads=trace.heads)


def _arc(
    arc: type[Arc], t: int, s: int, colour: str, linewidth: float, alpha: float, *, zorder: int, cap: float = 0.0
) -> Arc:
    """The half ellipse from token ``t`` to token ``s``: above the line when ``s`` is later, below when earlier;
    as high as it is wide, or ``cap`` high where that is lower."""
    span, above = abs(s - t), s > t
    return arc(
        ((s + t) / 2, 0),
        span,
        min(span, cap) if cap else span,
        theta1=0 if above else 180,
        theta2=180 if above else 360,
        color=colour,
        linewidth=linewidth,
        alpha=alpha,
        zorder=zorder,
    )


# -- files ---------------------------------------------------------------------------------------------------


def _figure(width: float, height: float, dpi: int) -> Figure:
    """A figure drawn by Agg alone: no pyplot, so no global backend is switched and nothing is kept open."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Half a pixel more than round(inches × dpi): Agg truncates, so the PNG is exactly round(inches × dpi) pixels.
    figure = Figure(figsize=((round(width * dpi) + 0.5) / dpi, (round(height * dpi) + 0.5) / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


# No date (the same trace gives the same file) and no creator line with matplotlib's web address.
_NO_METADATA: dict[str, dict[str, None]] = {
    "svg": {"Date": None, "Creator": None, "Format": None, "Type": None},
    "png": {"Software": None},
}


def _to_bytes(figure: Figure, format: ImageFormat) -> bytes:
    import io

    import matplotlib

    if format not in ("png", "svg"):
        raise InputError(f"pictures are png or svg, not {format!r}")
    buffer = io.BytesIO()
    # SVG keeps text as text (searchable, selectable), and no date, so the same trace gives the same file.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "qkv"}):
        figure.savefig(buffer, format=format, metadata=_NO_METADATA[format])
    return buffer.getvalue()
