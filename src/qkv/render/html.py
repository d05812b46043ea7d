"""A trace as one self-contained HTML file: inline CSS and JavaScript, the weights inside, no network at all.

The page shows one head at a time, picked by a layer and a head menu ("mean" averages the heads), or in the
layer × head grid of thumbnails:

- the tokens twice, in two columns; while no token is hovered, a line from each token on the left to each token
  it attends to on the right, as thick and as opaque as the weight (the ``MAX_LINES`` strongest; lines to the
  sink tokens are grey); hovering a token on the left keeps only its lines and writes the weights beside their
  targets, hovering one on the right shows who attends to it (a click or the arrow keys keep a token);
- a heatmap canvas of the same weights (row: a token, column: the token it attends to) through viridis, whose
  hovered token's row and column are outlined. Like every heatmap of qkv it is shaded against the head's scale
  (:mod:`qkv.data.scale`), sink columns in grey against 1; so are the grid's thumbnails;
- the head's entropy, attended distance, asymmetry and sink share (:mod:`qkv.data.metrics`).

**Size.** A view carries at most ``max_bytes`` (``MAX_PAGE_BYTES``, 5 MB, by default), so that a long trace
cannot freeze a notebook (a 244-token SmolLM2 trace was 86 MB). The weights travel as base64 float32 (exact)
when all of them fit; else as uint8 (each weight to within 1/510), the starting layer first, then the layers
nearest to it, as many whole layers as fit; else the starting head alone. The page says what it holds, and the
menus offer only that. A single head that does not fit is an :class:`~qkv.errors.InputError` naming the
longest text that does.

**Without JavaScript** (scripts off, or a viewer that strips them) the view shows a static summary instead: the
starting head's strongest arrows and the metrics of every head of its layer (or, where the caller gives one, a
picture). **Colours** follow the reader's theme (``prefers-color-scheme``, and JupyterLab's and VS Code's dark
themes). **Words** are English or Spanish (``lang``): the ``view.*`` templates of the front end's
``i18n/<lang>.json``.

:func:`trace_html` writes a whole page; :func:`trace_fragment` a ``<div>`` to embed. In a notebook,
``show(trace)`` as a cell's last line draws the fragment: it returns a :class:`TraceView`, whose
``_repr_html_`` Jupyter calls (CircuitsVis' pattern: the renderer owns the display, the trace stays plain data).

The view is drawn by the explorer's own modules (:mod:`qkv.web`: ``heatmap.js`` and ``viridis.js``, ``grid.js``,
``lines.js``) through ``trace_view.js``, inlined with them as one classic script (:func:`view_script`: no ES
modules, which a ``file://`` page cannot load), with ``trace_view.css`` (:func:`view_style`), so that a page needs
no server and no network. The script sets up every ``div.qkv-trace`` on the page not yet set up: several views
can share a page or a notebook, and a page holding several (the tour) can carry the style and the script once.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch

from qkv.data.metrics import asymmetry as asymmetry_of
from qkv.data.metrics import attended_distance, entropy, relative_asymmetry, sink_share, strongest_arrows
from qkv.data.trace import AttentionTrace, _ranges
from qkv.errors import InputError
from qkv.shapes import Tensor
from qkv.web import LANGUAGES, inline_script, read, words

__all__ = [
    "MAX_LINES",
    "MAX_PAGE_BYTES",
    "TraceView",
    "show",
    "trace_fragment",
    "trace_html",
    "view_script",
    "view_style",
]

MAX_PAGE_BYTES = 5_000_000  # bytes of one view (page or notebook fragment), unless max_bytes says otherwise
MAX_LINES = 3000  # lines drawn at most for one head: its strongest
STATIC_ARROWS = 12  # arrows in the summary shown without JavaScript
SLACK = 2048  # bytes kept free for the markup around the data


@cache
def view_script() -> str:
    """The view's script: ``trace_view.js`` and the modules it imports, inlined as one classic script that sets up
    every bare view on the page (:mod:`qkv.web.inline`)."""
    return inline_script("trace_view.js", then="main.setUpViews();")


def view_style() -> str:
    """The view's CSS, ``trace_view.css`` of :mod:`qkv.web` (every rule scoped to ``.qkv-trace``)."""
    return read("trace_view.css")


def _words(lang: str) -> dict[str, str]:
    """The view's words in ``lang``, checked."""
    if lang not in LANGUAGES:
        raise InputError(f"lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    return words(lang, "view.")


# -- what the view carries -------------------------------------------------------------------------------------


def _encoded(matrices: Tensor, encoding: str) -> str:
    """``(N, T, S)`` weights as base64: float32 little-endian, or uint8 ``round(255 · w)``."""
    if encoding == "float32":
        raw = matrices.detach().to(torch.float32).cpu().contiguous().numpy().astype("<f4").tobytes()
    else:
        levels = (matrices.detach().double().cpu().clamp(0, 1) * 255).round().to(torch.uint8)  # (N, T, S)
        raw = levels.contiguous().numpy().tobytes()
    return base64.b64encode(raw).decode("ascii")


def _b64(count: int) -> int:
    """The length of ``count`` bytes in base64."""
    return 4 * math.ceil(count / 3)


def _choose(trace: AttentionTrace, index: int, head: int | None, room: int) -> tuple[str, list[tuple[int, int]]]:
    """What fits in ``room`` bytes: the encoding and the ``(layer index, head)`` matrices held, in order (head
    ``-1``: the mean of the layer's heads, computed here)."""
    L, H, T, S = trace.weights.shape
    if _b64(4 * L * H * T * S) <= room:
        return "float32", [(layer, h) for layer in range(L) for h in range(H)]
    per_layer = _b64(H * T * S)
    nearest = sorted(range(L), key=lambda layer: (abs(layer - index), layer))  # the starting layer, then its nearest
    count = min(room // per_layer, L)
    if count >= 1:
        chosen = sorted(nearest[:count])
        return "uint8", [(layer, h) for layer in chosen for h in range(H)]
    if _b64(T * S) <= room:
        return "uint8", [(index, -1 if head is None else head)]
    longest = int(math.sqrt(max(room, 0) * 3 / 4))
    raise InputError(
        f"one head of {T} tokens needs {_b64(T * S):,} bytes, more than the {max(room, 0):,} left for weights in "
        f"this view's cap: show at most {longest} tokens, or raise max_bytes"
    )


def _metrics(trace: AttentionTrace) -> list[list[list[float]]]:
    weights = trace.weights.double()  # (L, H, T, S)
    every = torch.cat([weights, weights.mean(dim=1, keepdim=True)], dim=1)  # (L, H + 1, T, S): the mean last
    metrics = torch.stack(
        [
            entropy(every),
            attended_distance(every),
            asymmetry_of(every),
            relative_asymmetry(every),
            sink_share(every, trace.sinks),
        ],
        dim=-1,
    )  # (L, H + 1, 5)
    return [[[round(float(v), 4) for v in head_row] for head_row in layer_row] for layer_row in metrics.tolist()]


def _payload(
    trace: AttentionTrace, index: int, head: int | None, room: int | None, say: dict[str, str]
) -> dict[str, Any]:
    """The view's data, its weights within ``room`` bytes (``None``: without weights, to measure the rest), and
    its words ``say``."""
    data: dict[str, Any] = {
        "model": trace.model,
        "tokens": trace.labels,
        "special": list(trace.special),
        "sinks": list(trace.sinks),
        "causal": trace.causal,
        "sinkNames": trace.sink_names if any(trace.sinks) else "",
        "layers": list(trace.layers),
        "heads": trace.heads,
        "layer": index,
        "head": -1 if head is None else head,
        "metrics": _metrics(trace),
        "maxLines": MAX_LINES,
        "encoding": "float32",
        "held": [],
        "weights": "",
        "words": say,
    }
    if room is None:
        return data
    encoding, held = _choose(trace, index, head, room)
    matrices = torch.stack(
        [trace.weights[layer].double().mean(dim=0) if h < 0 else trace.weights[layer, h] for layer, h in held]
    )  # (N, T, S)
    data.update(encoding=encoding, held=[list(pair) for pair in held], weights=_encoded(matrices, encoding))
    return data


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' can close it or start a comment."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- the markup ------------------------------------------------------------------------------------------------


def _held_note(trace: AttentionTrace, data: dict[str, Any], cap: int) -> str:
    """What the view holds, when it is not every weight exactly (empty when it is)."""
    held: list[list[int]] = data["held"]
    L, H = trace.weights.shape[:2]
    if data["encoding"] == "float32":
        return ""
    cap_text = f"{cap / 1e6:.1f} MB"
    if len(held) == L * H:
        return f"Weights rounded to 1/255 to keep this view under {cap_text}."
    if held[0][1] < 0 or len(held) == 1:
        which = "the mean of its heads" if held[0][1] < 0 else f"head {held[0][1]}"
        what = f"layer {trace.layers[held[0][0]]}, {which}, only"
    else:
        layers = sorted({trace.layers[layer] for layer, _ in held})
        what = f"layer{'s' * (len(layers) > 1)} {_ranges(layers)} of {_ranges(trace.layers)}"
    return (
        f"This view holds {what} (weights rounded to 1/255) to stay under {cap_text}; pick another layer with "
        "layer= (qkv attend --layer), or raise max_bytes."
    )


def _static_summary(trace: AttentionTrace, index: int, head: int | None, say: dict[str, str]) -> str:
    """The view without JavaScript: the starting head's strongest arrows, the metrics of its layer's heads."""
    layer = trace.layers[index]
    weights = trace.head_weights(layer, head)  # (T, S)
    labels = trace.labels
    if head is None:
        which = say["view.which_mean"].format(heads=trace.heads)
    else:
        which = say["view.which_head"].format(head=head)
    arrows = strongest_arrows(weights, top=STATIC_ARROWS, sinks=trace.sinks)
    rows = "".join(
        f"<tr><td>{html.escape(labels[a.query])}</td><td>⇒</td><td>{html.escape(labels[a.key])}</td>"
        f"<td>{a.weight:.2f}</td></tr>"
        for a in arrows
    )
    metrics = _metrics(trace)[index]
    names = [*(str(h) for h in range(trace.heads)), html.escape(say["view.mean_row"])]
    heads = "".join(
        f"<tr><td>{name}</td>" + "".join(f"<td>{value:.2f}</td>" for value in (m[0], m[1], m[3], m[4])) + "</tr>"
        for name, m in zip(names, metrics, strict=True)
    )
    sinks = say["view.and_sinks"].format(sinks=trace.sink_names) if any(trace.sinks) else ""
    columns = ("view.column_head", "view.column_entropy", "view.column_distance", "view.column_asymmetry")
    header = "".join(f"<th>{html.escape(say[key])}</th>" for key in (*columns, "view.column_sink_share"))
    intro = say["view.no_js"].format(layer=layer, which=which, sinks=sinks)
    rows = rows or f"<tr><td>{html.escape(say['view.none'])}</td></tr>"
    return (
        f'<div class="qkv-static" data-role="static"><p>{html.escape(intro)}</p>'
        f'<table class="qkv-arrows">{rows}</table>'
        f"<p>{html.escape(say['view.every_head'].format(layer=layer))}</p>"
        f'<table class="qkv-table"><tr>{header}</tr>{heads}</table></div>'
    )


def trace_fragment(
    trace: AttentionTrace,
    *,
    layer: int | None = None,
    head: int | None = None,
    compact: bool = True,
    max_bytes: int = MAX_PAGE_BYTES,
    lang: str = "en",
    assets: bool = True,
    fallback: str | None = None,
    heading: int | None = None,
) -> str:
    """A ``<div>`` showing ``trace``, at most ``max_bytes`` long (UTF-8); it starts on ``layer`` (the last captured
    by default) and ``head`` (``None``: the mean of the heads), in ``lang`` (``"en"`` or ``"es"``).

    ``compact`` leaves out the grid of heads and the heatmap. ``assets=False`` leaves out the style and the
    script (:func:`view_style`, :func:`view_script`), for a page that carries them once for several views, the
    script after the last. ``fallback`` (HTML, e.g. a picture) replaces the summary shown without JavaScript; it
    stays, folded, once the view runs. ``heading`` (1–6) makes the view's title a heading of that level, as the
    title of a page or of a section (``None``: plain text, for a notebook cell)."""
    index = trace.layer_index(layer)
    if head is not None and not 0 <= head < trace.heads:
        raise InputError(f"head {head} is out of range; this model has heads 0…{trace.heads - 1}")
    say = _words(lang)
    title = html.escape(
        (f"{trace.model} · " if trace.model else "") + say["view.title"].format(tokens=len(trace.tokens))
    )
    tag = "div" if heading is None else f"h{min(max(heading, 1), 6)}"
    if fallback is None:
        static = _static_summary(trace, index, head, say)
    else:
        static = (
            f'<details class="qkv-fallback" data-role="fallback" open><summary>{html.escape(say["view.picture"])}'
            f"</summary>{fallback}</details>"
        )
    grid = heatmap = heatmap_help = ""
    if not compact:
        grid = (
            '<div class="qkv-grid"><div data-role="grid"></div>'
            f'<p class="qkv-help" data-role="grid-help">{html.escape(say["view.grid_help"])}</p></div>'
        )
        heatmap = (
            '<div class="qkv-heatmap-wrap"><canvas data-role="heatmap" role="img"></canvas>'
            '<canvas data-role="overlay" aria-hidden="true"></canvas></div>'
        )
        heatmap_help = f" {html.escape(say['view.heatmap_help'])}"
    style = f"<style>{view_style()}</style>\n" if assets else ""
    script = f"<script>{view_script()}</script>\n" if assets else ""

    def fragment(data: dict[str, Any], note: str) -> str:
        held = f'<div class="qkv-note">{html.escape(note)}</div>\n' if note else ""
        return (
            f'<div class="qkv-trace" lang="{lang}">\n{style}'
            f'<{tag} class="qkv-title">{title}</{tag}>\n'
            f'<div class="qkv-text">{html.escape(trace.text)}</div>\n'
            f"{static}\n{held}"
            '<div class="qkv-controls">'
            f'<label>{html.escape(say["view.layer"])} <select data-role="layer"></select></label>'
            f'<label>{html.escape(say["view.head"])} <select data-role="head"></select></label>'
            '<span class="qkv-metrics" data-role="metrics"></span></div>\n'
            '<div class="qkv-hover" data-role="hover" aria-live="polite"></div>\n'
            f'<div class="qkv-body">{grid}'
            '<div class="qkv-lines-wrap" data-role="lines-wrap" tabindex="0" role="group" '
            f'aria-label="{html.escape(say["view.lines_help"])}">'
            '<svg class="qkv-lines" data-role="lines" aria-hidden="true"></svg></div>'
            f"{heatmap}</div>\n"
            f'<p class="qkv-help">{html.escape(say["view.lines_help"])}{heatmap_help}</p>\n'
            f'<script type="application/json" data-role="data">{_script_json(data)}</script>\n'
            f"{script}</div>"
        )

    longest_note = 260 + len(trace.model)  # bytes the note may take, at most
    fixed = len(fragment(_payload(trace, index, head, None, say), "").encode("utf-8")) + longest_note + SLACK
    data = _payload(trace, index, head, max_bytes - fixed, say)
    return fragment(data, _held_note(trace, data, max_bytes))


def trace_html(
    trace: AttentionTrace,
    *,
    layer: int | None = None,
    head: int | None = None,
    max_bytes: int = MAX_PAGE_BYTES,
    lang: str = "en",
) -> str:
    """A whole HTML page showing ``trace`` (see :func:`trace_fragment`), with the grid of heads and the heatmap."""
    title = html.escape(f"qkv attention · {trace.model}" if trace.model else "qkv attention")
    view = trace_fragment(trace, layer=layer, head=head, compact=False, max_bytes=max_bytes - 420, lang=lang, heading=1)
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{title}</title>\n</head>\n<body>\n<main>\n{view}\n</main>\n</body>\n</html>\n"
    )


@dataclass(frozen=True)
class TraceView:
    """An HTML view a notebook displays: Jupyter calls :meth:`_repr_html_`; ``str()`` gives the same HTML."""

    html: str

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"TraceView({len(self.html.encode('utf-8')):,} bytes of HTML)"


def show(
    trace: AttentionTrace,
    *,
    layer: int | None = None,
    head: int | None = None,
    max_bytes: int = MAX_PAGE_BYTES,
    lang: str = "en",
) -> TraceView:
    """``trace`` in a notebook: the compact view of :func:`trace_fragment` (no grid, no heatmap, at most
    ``max_bytes``), starting on ``layer`` (the last captured by default) and ``head`` (``None``: the mean of the
    heads), in ``lang``."""
    return TraceView(trace_fragment(trace, layer=layer, head=head, max_bytes=max_bytes, lang=lang))
