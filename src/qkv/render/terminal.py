"""A trace in the terminal: one head's weights as a heatmap, its strongest arrows, and its numbers.

    model minilm · layer 2 · head 0 of 12 · 16 tokens
    …heatmap: a row per token, a column per token it can attend to, darker = more…
    strongest arrows (without self-attention and the sinks [CLS] [SEP]):
      Riley  ⇒ dog     0.37
      moving ⇒ stops   0.33

Each head is shaded against its scale, the 99th percentile of its weights outside the sink columns
(:mod:`qkv.data.scale`), so that a sink does not wash out the rest; sink columns are shaded against 1.
With ``color=True`` the cells are ANSI 256-colour background blocks; without, shade characters (``·░▒▓█``),
so the output reads the same in a file or a pipe. The heatmap fits ``width`` columns (the terminal's width
by default): cells shrink from two characters to one, then columns past the edge are left out, and it says so.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence

from qkv.data.metrics import asymmetry as asymmetry_of
from qkv.data.metrics import (
    attended_distance,
    entropy,
    relative_asymmetry,
    sink_share,
    strongest_arrows,
)
from qkv.data.scale import PERCENTILE, head_scales
from qkv.data.trace import AttentionTrace
from qkv.errors import InputError
from qkv.shapes import Tensor

__all__ = ["COLOR_RAMP", "render_terminal"]

# The 6×6×6 colour cube from white through reds to dark red: (5,5,5) (5,4,4) … (5,0,0) (4,0,0) (3,0,0) (2,0,0).
COLOR_RAMP = (231, 224, 217, 210, 203, 196, 160, 124, 88)
SHADES = "·░▒▓█"
LABEL_WIDTH = 14  # longer token labels are cut with "…"
RESET = "\x1b[0m"


def render_terminal(
    trace: AttentionTrace,
    *,
    layer: int | None = None,
    head: int | None = None,
    top: int = 10,
    width: int | None = None,
    color: bool = False,
) -> str:
    """The heatmap, strongest arrows and metrics of one head (``head=None``: the mean of the layer's heads)
    of a captured ``layer`` (the last by default), in at most ``width`` columns."""
    if top < 0:
        raise InputError(f"top must be 0 or more, got {top}")
    columns = width if width is not None else shutil.get_terminal_size().columns
    columns = max(columns, 40)
    index = trace.layer_index(layer)
    weights = trace.head_weights(trace.layers[index], head)  # (T, S)
    labels = trace.labels
    which = f"head {head} of {trace.heads}" if head is not None else f"mean of {trace.heads} heads"
    title = f"{'model ' + trace.model + ' · ' if trace.model else ''}layer {trace.layers[index]} · {which}"
    lines = _wrap(f"{title} · {len(labels)} tokens", columns)
    lines += _wrap(
        f"row: a token; column: the token it attends to; darker: more, up to the head's scale (the {PERCENTILE}th "
        "percentile of its weights outside the sinks)",
        columns,
    )
    scale = float(head_scales(trace, weights))  # the text's own weights set the shades, not the sinks'
    lines += _heatmap(weights.tolist(), labels, columns, color, scale, trace.sinks)
    lines += _arrows(trace, weights, labels, top, columns)
    lines += _wrap(_numbers(trace, weights), columns)
    return "\n".join(lines)


def _wrap(text: str, columns: int) -> list[str]:
    return textwrap.wrap(text, width=columns, subsequent_indent="  ", break_on_hyphens=False) or [""]


def _cut(label: str, width: int) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _heatmap(
    rows: list[list[float]], labels: list[str], columns: int, color: bool, largest: float, sinks: Sequence[bool]
) -> list[str]:
    T, S = len(rows), len(rows[0]) if rows else 0
    number_width = len(str(max(T, S) - 1))
    label_width = min(max((len(label) for label in labels), default=1), LABEL_WIDTH)
    prefix = number_width + 1 + label_width + 1  # "12 Riley      │"
    room = columns - prefix - 1
    cell = 2 if room >= 2 * S else 1
    shown = min(S, room // cell)
    lines = []
    for position in range(number_width):  # column numbers, written downwards
        digits = "".join(f"{str(s).rjust(number_width)[position]:>{cell}}" for s in range(shown))
        lines.append(" " * (prefix + 1) + digits)
    for t, row in enumerate(rows):
        head = f"{t:>{number_width}} {_cut(labels[t], label_width):<{label_width}} │"
        cells = (_cell(row[s] if sinks[s] else row[s] / largest, cell, color) for s in range(shown))
        lines.append(head + "".join(cells) + (RESET * color))
    if color:
        scale = "".join(_cell(level / (len(COLOR_RAMP) - 1), 1, color) for level in range(len(COLOR_RAMP))) + RESET
    else:
        scale = SHADES
    lines.append(f"{' ' * prefix} {scale} 0 … {largest:.2f}" + (", sink columns 0 … 1" if any(sinks) else ""))
    if shown < S:
        note = f"(columns {shown}…{S - 1} do not fit in {columns} columns: widen the terminal or use --format html)"
        lines += _wrap(note, columns)
    return lines


def _cell(level: float, width: int, color: bool) -> str:
    level = min(max(level, 0.0), 1.0)
    if color:
        code = COLOR_RAMP[round(level * (len(COLOR_RAMP) - 1))]
        return f"\x1b[48;5;{code}m" + " " * width
    if level < 0.05:
        return SHADES[0].rjust(width)
    return SHADES[1 + min(int(level * 4), 3)] * width


def _arrows(trace: AttentionTrace, weights: Tensor, labels: list[str], top: int, columns: int) -> list[str]:
    if top == 0:
        return []
    arrows = strongest_arrows(weights, top=top, sinks=trace.sinks)
    sinks = f" and the sinks {trace.sink_names}" if any(trace.sinks) else ""
    header = f"strongest arrows (without self-attention{sinks}):"
    lines = _wrap(header, columns)
    if not arrows:
        lines.append("  (none)")
        return lines
    query_width = max(len(_cut(labels[a.query], LABEL_WIDTH)) for a in arrows)
    key_width = max(len(_cut(labels[a.key], LABEL_WIDTH)) for a in arrows)
    for arrow in arrows:
        query, key = _cut(labels[arrow.query], LABEL_WIDTH), _cut(labels[arrow.key], LABEL_WIDTH)
        lines.append(f"  {query:<{query_width}} ⇒ {key:<{key_width}}  {arrow.weight:.2f}")
    return lines


def _numbers(trace: AttentionTrace, weights: Tensor) -> str:
    square = weights.double()
    parts = [
        f"entropy {float(entropy(square)):.2f} bits",
        f"mean distance {float(attended_distance(square)):.1f} tokens",
        f"asymmetry ‖A − Aᵀ‖ {float(asymmetry_of(square)):.2f}"
        f" ({float(relative_asymmetry(square)):.2f} of its maximum)",
        f"sink share {float(sink_share(square, trace.sinks)):.2f} (to {trace.sink_names})"
        if any(trace.sinks)
        else "no sink tokens",
    ]
    return " · ".join(parts)
