"""A trace as a picture (PNG or SVG, with matplotlib's Agg backend: no display, no network, no font download).

- :func:`heatmap_grid` — every captured head: a grid of small heatmaps, one row per layer, one column per
  head; in each, row ``t`` is a token and column ``s`` the token it attends to (darker: more, scaled to the
  head's own largest weight, so that a head whose attention sits mostly on ``[CLS]`` still shows its pattern).
- :func:`arc_diagram` — one head: the tokens in order along a line, and an arc from each token to each
  token it attends to, as wide as the weight. Arcs above the line look to the right (later tokens), arcs below
  look to the left (earlier tokens; a causal model draws only these); arcs from or to the sink tokens (special
  tokens and the first token: ``trace.sinks``) are grey; a dot on a token is its attention to itself.

Each returns the file's bytes; ``write_heatmap_grid`` and ``write_arc_diagram`` write them to a path (the
format from its suffix). Sizes are fixed by the trace's shape, not fitted to the drawing (see
:func:`grid_inches`, :func:`arc_inches`): a PNG is ``round(inches × dpi)`` pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.files import write_atomically

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["arc_diagram", "arc_inches", "grid_inches", "heatmap_grid", "write_arc_diagram", "write_heatmap_grid"]

ImageFormat = Literal["png", "svg"]

GRID_CELL = 1.3  # inches per head in the grid
GRID_MARGIN = (1.0, 0.9)  # inches added for the row labels (left) and the title and column labels (top)
ARC_INCHES_PER_TOKEN = 0.6
ARC_WIDTH_LIMITS = (6.0, 40.0)
ARC_HEIGHT = 5.0
RIGHT, LEFT, SELF, SINK = "#c0392b", "#2c5d8f", "#555555", "#b8b8b8"


def grid_inches(trace: AttentionTrace) -> tuple[float, float]:
    """(width, height) of the heatmap grid in inches: ``GRID_CELL`` per head and per layer, plus margins."""
    L, H = trace.weights.shape[:2]
    return GRID_MARGIN[0] + GRID_CELL * H, GRID_MARGIN[1] + GRID_CELL * L


def arc_inches(trace: AttentionTrace) -> tuple[float, float]:
    """(width, height) of an arc diagram in inches: ``ARC_INCHES_PER_TOKEN`` per token, within limits."""
    low, high = ARC_WIDTH_LIMITS
    return min(max(ARC_INCHES_PER_TOKEN * len(trace.tokens) + 1.0, low), high), ARC_HEIGHT


def _format(path: Path, format: ImageFormat | None) -> ImageFormat:
    if format is not None:
        return format
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("png", "svg"):
        return suffix  # type: ignore[return-value]
    raise InputError(f"cannot tell the picture format of {path}: name it .png or .svg, or pass format")


def _title(trace: AttentionTrace, what: str) -> str:
    text = trace.text if len(trace.text) <= 80 else trace.text[:79] + "…"
    return f"{trace.model + ' · ' if trace.model else ''}{what}\n“{text}”"


def write_heatmap_grid(
    trace: AttentionTrace, path: str | os.PathLike[str], *, format: ImageFormat | None = None, dpi: int = 100
) -> Path:
    """:func:`heatmap_grid` written atomically to ``path`` (the format from its suffix unless given)."""
    target = Path(path)
    return write_atomically(target, heatmap_grid(trace, format=_format(target, format), dpi=dpi))


def heatmap_grid(trace: AttentionTrace, *, format: ImageFormat = "png", dpi: int = 100) -> bytes:
    """Every captured head as a small heatmap, layers down and heads across: the PNG or SVG file's bytes."""
    L, H = trace.weights.shape[:2]
    width, height = grid_inches(trace)
    figure = _figure(width, height, dpi)
    left, top = GRID_MARGIN[0] / width, 1 - GRID_MARGIN[1] / height
    grid = figure.add_gridspec(L, H, left=left, right=0.99, bottom=0.01, top=top, wspace=0.08, hspace=0.08)
    for row in range(L):
        for head in range(H):
            axes = figure.add_subplot(grid[row, head])
            weights = trace.weights[row, head]  # (T, S)
            axes.imshow(weights.numpy(), cmap="Reds", vmin=0.0, vmax=float(weights.max()) or 1.0)
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(f"head {head}", fontsize=9)
            if head == 0:
                axes.set_ylabel(f"layer {trace.layers[row]}", fontsize=9)
    figure.suptitle(_title(trace, "attention of every head (row: token, column: what it attends to)"), fontsize=10)
    return _to_bytes(figure, format)


def write_arc_diagram(
    trace: AttentionTrace,
    path: str | os.PathLike[str],
    *,
    layer: int | None = None,
    head: int | None = None,
    format: ImageFormat | None = None,
    dpi: int = 100,
    threshold: float = 0.02,
) -> Path:
    """:func:`arc_diagram` written atomically to ``path`` (the format from its suffix unless given)."""
    target = Path(path)
    picture = arc_diagram(trace, layer=layer, head=head, format=_format(target, format), dpi=dpi, threshold=threshold)
    return write_atomically(target, picture)


def arc_diagram(
    trace: AttentionTrace,
    *,
    layer: int | None = None,
    head: int | None = None,
    format: ImageFormat = "png",
    dpi: int = 100,
    threshold: float = 0.02,
) -> bytes:
    """The arc diagram of one head (``head=None``: the mean of the layer's heads) of a captured ``layer`` (the
    last by default), as PNG or SVG bytes; arcs below ``threshold`` are left out."""
    from matplotlib.patches import Arc, Circle

    index = trace.layer_index(layer)
    weights = trace.head_weights(trace.layers[index], head).tolist()  # (T, S)
    labels = trace.labels
    T = len(labels)
    width, height = arc_inches(trace)
    figure = _figure(width, height, dpi)
    axes = figure.add_axes((0.02, 0.02, 0.96, 0.8))
    largest = max((max(row) for row in weights), default=1.0) or 1.0
    sinks = trace.sinks
    text_arcs = [weights[t][s] for t in range(T) for s in range(T) if s != t and not (sinks[s] or sinks[t])]
    strongest = max(text_arcs, default=largest) or largest  # the text's own arcs are shaded against each other
    up = down = 0.0  # the tallest arc above and below the line
    for t in range(T):
        for s in range(T):
            weight = weights[t][s]
            if weight < threshold:
                continue
            if s == t:
                radius = 0.08 + 0.25 * weight / largest
                axes.add_patch(Circle((t, 0), radius, color=SELF, alpha=0.6, linewidth=0))
                continue
            span, above = abs(s - t), s > t
            sink = sinks[s] or sinks[t]  # drawn in grey: the sink, not the text
            axes.add_patch(
                Arc(
                    ((s + t) / 2, 0),
                    span,
                    span,
                    theta1=0 if above else 180,
                    theta2=180 if above else 360,
                    color=SINK if sink else RIGHT if above else LEFT,
                    linewidth=0.5 + 7 * weight,
                    alpha=min(1.0, 0.25 + 0.75 * weight / (largest if sink else strongest)),
                )
            )
            up, down = (max(up, span / 2), down) if above else (up, max(down, span / 2))
    for t, label in enumerate(labels):
        axes.text(
            t,
            0,
            label,
            ha="center",
            va="center",
            rotation=90 if T > 24 else 0,
            fontsize=9,
            color=SELF if trace.special[t] else "black",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
        )
    axes.set_xlim(-1, T)
    axes.set_ylim(-down - 0.6, up + 0.6)
    axes.set_aspect("auto")
    axes.axis("off")
    which = f"head {head}" if head is not None else f"mean of {trace.heads} heads"
    figure.suptitle(
        _title(
            trace,
            f"layer {trace.layers[index]} · {which}: arc width = weight; above: looks right, below: looks left",
        ),
        fontsize=10,
    )
    return _to_bytes(figure, format)


def _figure(width: float, height: float, dpi: int) -> Figure:
    """A figure drawn by Agg alone: no pyplot, so no global backend is switched and nothing is kept open."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
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
